"""`scalpel merge` and `scalpel stack` against PEFT itself (fixtures/peft, made by make_peft_fixtures.py with
torch + peft), docs/methods.md's combination rules transcribed in NumPy, and llama.cpp-style GGUF LoRAs written
by gguf-py. When torch + transformers + peft are importable, stacked adapters are also loaded by PEFT."""
import json
import re
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

PEFT = Path(__file__).resolve().parents[2] / "fixtures" / "peft"
LLAMA = PEFT / "llama_base"
GPT2 = PEFT / "gpt2_base"
A = PEFT / "adapters" / "plain_a"
B = PEFT / "adapters" / "plain_b"


def adapter(name):
    return PEFT / "adapters" / name


def merged_reference(name):
    return load_file(str(PEFT / "merged" / name / "model.safetensors"))


def load_any(path):
    """{name: float32 array} of a safetensors file, a folder with one shard, or a GGUF file."""
    path = str(path)
    if path.endswith(".gguf"):
        reader = gguf.GGUFReader(path)
        out = {}
        for t in reader.tensors:
            shape = [int(d) for d in reversed(t.shape.tolist())]
            out[t.name] = np.asarray(t.data).astype(np.float32).reshape(shape)
        return out
    if not path.endswith(".safetensors"):
        path += "/model.safetensors"
    return {k: v.astype(np.float32) for k, v in load_file(path).items()}


def relative_error(got, want):
    scale = float(np.abs(want).max()) if want.size else 0.0
    diff = float(np.abs(got.astype(np.float64) - want.astype(np.float64)).max()) if want.size else 0.0
    return diff / scale if scale else diff


def assert_close(got, want, tol=1e-6):
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == want[name].shape, name
        err = relative_error(got[name], want[name])
        assert err <= tol, f"{name}: relative error {err}"


def adapter_config(path):
    return json.loads((path / "adapter_config.json").read_text())


def scaling(config, module_path):
    """PEFT's scaling of a module: rank_pattern / alpha_pattern keys matched as `(.*\\.)?(KEY)$`."""
    def pattern(patterns, default):
        for key, value in patterns.items():
            if re.match(rf"(.*\.)?({key})$", module_path):
                return value
        return default
    r = pattern(config.get("rank_pattern") or {}, config["r"])
    alpha = pattern(config.get("alpha_pattern") or {}, config["lora_alpha"])
    return alpha / (np.sqrt(r) if config.get("use_rslora") else r)


def lora_updates(path, weight=1.0):
    """{module path: weight * scaling * B @ A} of a plain PEFT adapter, in float64."""
    config = adapter_config(path)
    tensors = load_file(str(path / "adapter_model.safetensors"))
    out = {}
    for key, a in tensors.items():
        if not key.endswith(".lora_A.weight"):
            continue
        module = key[len("base_model.model."):-len(".lora_A.weight")]
        b = tensors[key.replace(".lora_A.", ".lora_B.")]
        out[module] = weight * scaling(config, module) * (b.astype(np.float64) @ a.astype(np.float64))
    return out


# ------------------------------------------------------------------------------------------------ merge

@pytest.mark.parametrize("base,name", [(LLAMA, "patterns"), (LLAMA, "rslora"), (LLAMA, "dora"), (GPT2, "gpt2_fifo"),
                                       (LLAMA, "plain_a"), (LLAMA, "plain_b")])
def test_merge_equals_peft_merge_and_unload(scalpel, tmp, base, name):
    out = tmp / "merged.safetensors"
    scalpel.run("merge", base, adapter(name), "-o", out)
    assert_close(load_any(out), merged_reference(name))


def test_adapters_apply_in_order_like_sequential_peft_merges(scalpel, tmp):
    scalpel.run("merge", LLAMA, A, B, "-o", tmp / "ab.safetensors")
    assert_close(load_any(tmp / "ab.safetensors"), merged_reference("plain_a_then_b"))


def test_weights_follow_the_formula(scalpel, tmp):
    """W' = W + sum_i w_i * s_i * B_i @ A_i, inline ADAPTER:WEIGHT and --weight alike."""
    base = load_any(LLAMA / "model.safetensors")
    want = {k: v.astype(np.float64) for k, v in base.items()}
    for path, w in ((A, 0.5), (B, -2.0)):
        for module, update in lora_updates(path, w).items():
            want[module + ".weight"] += update
    scalpel.run("merge", LLAMA, f"{A}:0.5", f"{B}:-2", "-o", tmp / "inline.safetensors")
    scalpel.run("merge", LLAMA, A, B, "--weight", "0.5", "--weight", "-2", "-o", tmp / "option.safetensors")
    for out in ("inline", "option"):
        got = load_any(tmp / f"{out}.safetensors")
        assert_close(got, {k: v.astype(np.float32) for k, v in want.items()})


def test_negative_weight_unmerges(scalpel, tmp):
    scalpel.run("merge", LLAMA, A, "-o", tmp / "m.safetensors")
    scalpel.run("merge", tmp / "m.safetensors", f"{A}:-1", "-o", tmp / "u.safetensors")
    back, base, merged = load_any(tmp / "u.safetensors"), load_any(LLAMA / "model.safetensors"), load_any(tmp / "m.safetensors")
    for name in base:
        assert np.abs(back[name] - base[name]).max() <= 1e-6 * np.abs(merged[name]).max(), name


@pytest.mark.parametrize("dtype,np_dtype", [("f16", np.float16), ("f32", np.float32)])
def test_dtype_rounds_the_f32_merge_once(scalpel, tmp, dtype, np_dtype):
    scalpel.run("merge", LLAMA, adapter("patterns"), "-o", tmp / "f32.safetensors")
    scalpel.run("merge", LLAMA, adapter("patterns"), "-o", tmp / "out.safetensors", "--dtype", dtype)
    f32 = load_file(str(tmp / "f32.safetensors"))
    out = load_file(str(tmp / "out.safetensors"))
    for name, values in f32.items():
        assert out[name].dtype == np_dtype, name
        assert out[name].tobytes() == values.astype(np_dtype).tobytes(), name


def test_folder_base_to_folder_output_copies_config(scalpel, tmp):
    scalpel.run("merge", LLAMA, A, "-o", tmp / "merged")
    assert sorted(p.name for p in (tmp / "merged").iterdir()) == ["config.json", "model.safetensors"]
    assert (tmp / "merged" / "config.json").read_bytes() == (LLAMA / "config.json").read_bytes()
    assert_close(load_any(tmp / "merged"), merged_reference("plain_a"))


def test_unmatched_adapter_keys_fail_naming_them_unless_ignored(scalpel, tmp):
    proc = scalpel.run("merge", LLAMA, adapter("gpt2_fifo"), "-o", tmp / "x.safetensors", check=False)
    assert proc.returncode == 1
    assert "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight: targets transformer.h.0.attn.c_attn.weight, " \
           "which is not in the base" in proc.stderr
    assert "--ignore-missing" in proc.stderr
    assert not (tmp / "x.safetensors").exists()
    # Skipping every key would merge into nothing: an error, not an unchanged copy (the pipeline issue).
    proc = scalpel.run("merge", LLAMA, adapter("gpt2_fifo"), "-o", tmp / "x.safetensors", "--ignore-missing", check=False)
    assert proc.returncode == 1 and "nothing would be merged (--ignore-missing skipped 8)" in proc.stderr
    assert not (tmp / "x.safetensors").exists()


# ------------------------------------------------------------------------------------------------- GGUF

GGUF_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
              "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
              "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}


def gguf_name(hf):
    """llama.cpp's tensor name of a Hugging Face Llama tensor."""
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    m = re.fullmatch(r"model\.layers\.(\d+)\.(.+)\.(weight|bias)", hf)
    return f"blk.{m.group(1)}.{GGUF_NAMES[m.group(2)]}.{m.group(3)}"


def write_gguf(path, tensors, kv=()):
    w = gguf.GGUFWriter(str(path), "llama")
    for key, kind, value in kv:
        getattr(w, f"add_{kind}")(key, value)
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("np_dtype", [np.float32, np.float16], ids=["f32", "f16"])
def test_gguf_lora_into_gguf_base_equals_the_safetensors_merge(scalpel, tmp, np_dtype):
    base = load_file(str(LLAMA / "model.safetensors"))
    typed = {k: (v.astype(np_dtype) if v.ndim == 2 else v) for k, v in base.items()}
    save_file(typed, str(tmp / "base.safetensors"))
    write_gguf(tmp / "base.gguf", {gguf_name(k): v for k, v in typed.items()})

    lora = load_file(str(A / "adapter_model.safetensors"))
    alpha = adapter_config(A)["lora_alpha"]
    tensors = {}
    for key, value in lora.items():
        module = key[len("base_model.model."):].rsplit(".lora_", 1)[0]
        suffix = ".lora_a" if ".lora_A." in key else ".lora_b"
        tensors[gguf_name(module + ".weight") + suffix] = value
    write_gguf(tmp / "lora.gguf", tensors,
               kv=[("general.type", "string", "adapter"), ("adapter.type", "string", "lora"),
                   ("adapter.lora.alpha", "float32", float(alpha))])

    scalpel.run("merge", tmp / "base.gguf", f"{tmp / 'lora.gguf'}:0.5", "-o", tmp / "merged.gguf")
    scalpel.run("merge", tmp / "base.safetensors", f"{A}:0.5", "-o", tmp / "merged.safetensors")
    from_gguf = load_any(tmp / "merged.gguf")
    from_st = {gguf_name(k): v for k, v in load_any(tmp / "merged.safetensors").items()}
    assert_close(from_gguf, from_st, tol=0)
    reader = gguf.GGUFReader(str(tmp / "merged.gguf"))
    assert reader.fields["general.architecture"].contents() == "llama"
    changed = [k for k in from_st if not np.array_equal(from_st[k], load_any(tmp / "base.gguf")[k])]
    assert len(changed) == 6


# ------------------------------------------------------------------------------------------------ stack

def stacked_updates(folder):
    """{module path: B' @ A'} of a stacked adapter (its scaling is 1: r == lora_alpha per module)."""
    config = adapter_config(folder)
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    out = {}
    for key, a in tensors.items():
        if key.endswith(".lora_A.weight"):
            module = key[len("base_model.model."):-len(".lora_A.weight")]
            assert scaling(config, module) == 1.0, module
            out[module] = tensors[key.replace(".lora_A.", ".lora_B.")].astype(np.float64) @ a.astype(np.float64)
    return out


M64 = (1 << 64) - 1


def mix64(z):
    """SplitMix64's finalizer on numpy uint64 (wrapping)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def fnv1a64(text):
    h = 0xCBF29CE484222325
    for byte in text.encode():
        h = ((h ^ byte) * 0x100000001B3) & M64
    return h


def dare_mask(seed, adapter_index, path, density, n):
    """docs/merge.md's DARE mask, transcribed."""
    inner = (fnv1a64(path) + int(mix64(adapter_index))) & M64
    stream = int(mix64((seed + int(mix64(inner))) & M64))
    e = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = mix64(np.uint64(stream) + e * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(11)
    return bits.astype(np.float64) * 2.0 ** -53 < density


def magnitude_prune(tau, density):
    k = int(density * tau.size)
    flat = tau.reshape(-1)
    keep = np.argsort(-np.abs(flat), kind="stable")[:k]
    out = np.zeros_like(flat)
    out[keep] = flat[keep]
    return out.reshape(tau.shape)


def disjoint_mean(taus, majority):
    stacked = np.stack(taus)
    signs = np.sign(stacked)
    total = stacked.sum(0) if majority == "total" else signs.sum(0)
    elected = np.where(total >= 0, 1.0, -1.0)
    agree = signs == elected
    return (stacked * agree).sum(0) / np.maximum(agree.sum(0), 1)


def reference_combination(inputs, method, density, majority="total", seed=0):
    """docs/methods.md's rules on tau_i = w_i * s_i * B_i @ A_i, per module of the union."""
    updates = [lora_updates(path, w) for path, w in inputs]
    modules = sorted(set().union(*updates))
    out = {}
    for module in modules:
        taus = [(i, u[module].astype(np.float32).astype(np.float64)) for i, u in enumerate(updates) if module in u]
        if method in ("ties", "magnitude_prune"):
            taus = [magnitude_prune(t, density) for _, t in taus]
        else:
            taus = [np.where(dare_mask(seed, i, module, density, t.size).reshape(t.shape), t / density, 0.0)
                    for i, t in taus]
        out[module] = sum(taus) if method in ("magnitude_prune", "dare_linear") else disjoint_mean(taus, majority)
    return out


@pytest.mark.parametrize("method,majority", [("ties", "total"), ("ties", "frequency"), ("magnitude_prune", None),
                                             ("dare_linear", None), ("dare_ties", "total"), ("dare_ties", "frequency")])
def test_sparsifying_methods_equal_numpy_transcription(scalpel, tmp, method, majority):
    inputs = [(A, 1.0), (B, 0.5)]
    args = ["stack", f"{A}:1", f"{B}:0.5", "-o", tmp / "out", "--method", method, "--density", "0.3"]
    if majority:
        args += ["--majority-sign", majority]
    if method.startswith("dare"):
        args += ["--seed", "11"]
    scalpel.run(*args)
    got = stacked_updates(tmp / "out")
    want = reference_combination(inputs, method, 0.3, majority or "total", seed=11)
    assert sorted(got) == sorted(want)
    for module in want:
        assert relative_error(got[module], want[module]) <= 1e-6, module


def test_stack_cat_then_merge_equals_sequential_merges(scalpel, tmp):
    scalpel.run("stack", f"{A}:0.7", f"{B}:-0.3", "-o", tmp / "cat")
    config = adapter_config(tmp / "cat")
    assert config["peft_type"] == "LORA" and config["r"] == config["lora_alpha"]
    assert config["rank_pattern"] == config["alpha_pattern"]
    scalpel.run("merge", LLAMA, tmp / "cat", "-o", tmp / "via_stack.safetensors")
    scalpel.run("merge", LLAMA, f"{A}:0.7", f"{B}:-0.3", "-o", tmp / "sequential.safetensors")
    assert_close(load_any(tmp / "via_stack.safetensors"), load_any(tmp / "sequential.safetensors"))


def test_linear_is_the_weighted_sum_of_the_updates(scalpel, tmp):
    scalpel.run("stack", f"{A}:0.6", f"{B}:0.4", "-o", tmp / "lin", "--method", "linear")
    got = stacked_updates(tmp / "lin")
    ua, ub = lora_updates(A, 0.6), lora_updates(B, 0.4)
    for module in set(ua) | set(ub):
        want = ua.get(module, 0) + ub.get(module, 0)
        assert relative_error(got[module], want) <= 1e-6, module


def test_svd_at_full_rank_is_the_weighted_sum_and_truncation_is_optimal(scalpel, tmp):
    inputs = [(A, 0.7), (B, -0.3)]
    scalpel.run("stack", f"{A}:0.7", f"{B}:-0.3", "-o", tmp / "full", "--method", "svd", "--rank", "64")
    proc = scalpel.run("stack", f"{A}:0.7", f"{B}:-0.3", "-o", tmp / "r2", "--method", "svd", "--rank", "2")
    assert "SVD truncation: relative Frobenius error" in proc.stdout
    ua, ub = lora_updates(A, 0.7), lora_updates(B, -0.3)
    full, small = stacked_updates(tmp / "full"), stacked_updates(tmp / "r2")
    for module in set(ua) | set(ub):
        want = ua.get(module, 0) + ub.get(module, 0)
        assert relative_error(full[module], want) <= 1e-5, module
        s = np.linalg.svd(want, compute_uv=False)
        optimal = np.sqrt((s[2:] ** 2).sum() / (s ** 2).sum())
        actual = np.linalg.norm(small[module] - want) / np.linalg.norm(want)
        assert abs(actual - optimal) < 1e-4, module
    config = adapter_config(tmp / "r2")
    assert config["r"] == 2 and config["lora_alpha"] == 2 and config["rank_pattern"] == {}


@pytest.mark.parametrize("method", ["ties_svd", "dare_ties_svd", "dare_linear_svd", "magnitude_prune_svd"])
def test_svd_variants_truncate_the_numpy_transcription_near_optimally(scalpel, tmp, method):
    base = method[:-len("_svd")]
    scalpel.run("stack", f"{A}:1", f"{B}:0.5", "-o", tmp / "out", "--method", method, "--density", "0.3",
                "--rank", "4", "--seed", "11")
    got = stacked_updates(tmp / "out")
    want = reference_combination([(A, 1.0), (B, 0.5)], base, 0.3, "total", seed=11)
    for module, d in want.items():
        s = np.linalg.svd(d, compute_uv=False)
        optimal = np.sqrt((s[4:] ** 2).sum() / (s ** 2).sum())
        actual = np.linalg.norm(got[module] - d) / np.linalg.norm(d)
        assert optimal - 1e-4 <= actual <= optimal * 1.05 + 1e-4, f"{module}: {actual} vs optimal {optimal}"


def test_stack_option_errors(scalpel, tmp):
    proc = scalpel.run("stack", A, B, "-o", tmp / "x", "--method", "ties", check=False)
    assert proc.returncode != 0 and "--density" in proc.stderr
    proc = scalpel.run("stack", A, B, "-o", tmp / "x", "--density", "0.5", check=False)
    assert proc.returncode != 0 and "--density applies to" in proc.stderr
    proc = scalpel.run("stack", A, B, "-o", tmp / "x", "--method", "svd", check=False)
    assert proc.returncode != 0 and "--rank" in proc.stderr
    proc = scalpel.run("stack", A, B, "-o", tmp / "x", "--rank", "4", check=False)
    assert proc.returncode != 0 and "--rank applies to" in proc.stderr
    proc = scalpel.run("stack", adapter("dora"), "-o", tmp / "x", check=False)
    assert proc.returncode == 1 and "DoRA" in proc.stderr
    assert not (tmp / "x").exists()


def test_peft_loads_stacked_adapters(scalpel, tmp):
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    from peft import PeftModel
    from transformers import LlamaForCausalLM
    scalpel.run("stack", f"{A}:0.7", f"{B}:-0.3", "-o", tmp / "cat")
    scalpel.run("stack", A, f"{B}:0.5", "-o", tmp / "ties", "--method", "ties", "--density", "0.4")
    scalpel.run("stack", adapter("patterns"), A, "-o", tmp / "patterns")
    scalpel.run("stack", adapter("patterns"), A, "-o", tmp / "svd", "--method", "svd", "--rank", "3")
    for name in ("cat", "ties", "patterns", "svd"):
        model = LlamaForCausalLM.from_pretrained(str(LLAMA), torch_dtype=torch.float32)
        merged = PeftModel.from_pretrained(model, str(tmp / name)).merge_and_unload()
        peft_values = {k: v.detach().numpy() for k, v in merged.state_dict().items()}
        scalpel.run("merge", LLAMA, tmp / name, "-o", tmp / f"{name}.safetensors")
        assert_close(load_any(tmp / f"{name}.safetensors"), peft_values)
