"""Adapter families (docs/adapters.md): merge, inspect, convert-adapter, stack and resize against PEFT's own
results (fixtures/adapters, made by make_adapter_fixtures.py with torch + peft) and planted spectra."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import REPO

FIX = REPO / "fixtures" / "adapters"
BASE = FIX / "base" / "model.safetensors"
EXPECTED = json.loads((FIX / "expected.json").read_text())
MERGEABLE = ["lora", "dora", "adalora", "ia3", "loha", "lokr", "lokr_full"]
PROMPT = ["prompt_tuning", "prefix_tuning", "p_tuning"]
PEFT_PREFIX = "base_model.model."


def assert_close(got_path, want, rtol=1e-6, names=None):
    got = load_file(str(got_path))
    want = load_file(str(want)) if not isinstance(want, dict) else want
    assert set(got) == set(want)
    for k in names or want:
        g, w = got[k].astype(np.float64), want[k].astype(np.float64)
        assert g.shape == w.shape, k
        err = np.linalg.norm(g - w) / max(np.linalg.norm(w), 1e-30)
        assert err <= rtol, f"{k}: relative error {err:.3g} > {rtol}"


@pytest.mark.parametrize("name", MERGEABLE)
def test_merge_matches_peft_merge_and_unload(scalpel, tmp_path, name):
    out = tmp_path / "merged.safetensors"
    scalpel.run("merge", BASE, FIX / "adapters" / name, "-o", out)
    assert_close(out, FIX / "merged" / name / "model.safetensors")
    base = load_file(str(BASE))
    changed = [k for k, v in load_file(str(out)).items() if not np.array_equal(v, base[k])]
    assert changed, "the merge changed nothing"


@pytest.mark.parametrize("name", PROMPT)
def test_merge_refuses_prompt_learning(scalpel, tmp_path, name):
    out = tmp_path / "merged.safetensors"
    proc = scalpel.run("merge", BASE, FIX / "adapters" / name, "-o", out, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalpel: error: ")
    assert "5 virtual tokens" in lines[0] and "cannot be merged" in lines[0]
    assert not out.exists()


def expected_ranks(name):
    """Module ranks read from the saved tensors and config with numpy (PEFT's conventions)."""
    tensors = load_file(str(FIX / "adapters" / name / "adapter_model.safetensors"))
    config = json.loads((FIX / "adapters" / name / "adapter_config.json").read_text())
    ranks = {}
    for k, v in tensors.items():
        path = k[len(PEFT_PREFIX):].rsplit(".", 1)[0]
        if k.endswith(".lora_A.weight"):
            ranks[path.rsplit(".", 1)[0]] = v.shape[0]
        elif k.endswith(".lora_A"):  # AdaLoRA
            ranks[path] = v.shape[0]
        elif k.endswith(".hada_w1_a"):
            ranks[path] = v.shape[1]
        elif ".lokr_" in k:
            ranks[path] = config["r"]
        elif k.endswith(".ia3_l"):
            ranks[path] = 1
    return ranks


@pytest.mark.parametrize("name", MERGEABLE + PROMPT)
def test_inspect_reports_type_rank_parameters(scalpel, name):
    report = scalpel.inspect(FIX / "adapters" / name)
    a = report["adapter"]
    want = EXPECTED[name]
    assert a["peft_type"] == want["peft_type"] and a["family"] == want["peft_type"]
    assert a["parameters"] == want["saved_parameters"]
    if name in PROMPT:
        assert a["num_virtual_tokens"] == want["num_virtual_tokens"] == 5
        return
    ranks = expected_ranks(name)
    assert a["module_ranks"] == ranks
    assert a["modules"] == len(ranks)
    if name == "adalora":
        assert a["init_r"] == 6
        assert ranks["model.layers.0.self_attn.q_proj"] == 4 and ranks["model.layers.1.mlp.down_proj"] == 2


def test_inspect_text_names_the_family(scalpel):
    out = scalpel.run("inspect", FIX / "adapters" / "loha").stdout
    assert "adapter LoHa (LOHA): 14 modules, ranks r=2 x2, r=4 x12, 7,680 parameters" in out
    out = scalpel.run("inspect", FIX / "adapters" / "prefix_tuning").stdout
    assert "prefix tuning (PREFIX_TUNING): 5 virtual tokens, 320 parameters; not mergeable" in out


def test_kohya_inspect_and_merge_builtin_mapping(scalpel, tmp_path):
    kohya = FIX / "kohya" / "lora.safetensors"
    a = scalpel.inspect(kohya)["adapter"]
    assert a["family"] == "KOHYA" and a["modules"] == 14
    out = tmp_path / "merged.safetensors"
    scalpel.run("merge", BASE, kohya, "-o", out)
    assert_close(out, FIX / "merged" / "lora" / "model.safetensors")


def test_kohya_merge_with_map_file(scalpel, tmp_path):
    tensors = load_file(str(FIX / "kohya" / "lora.safetensors"))
    renamed, mapping = {}, {}
    for k, v in tensors.items():
        prefix, part = k.split(".", 1)
        short = f"m{len(mapping)}" if prefix not in mapping else mapping[prefix][0]
        mapping.setdefault(prefix, (short, prefix.removeprefix("lora_unet_").replace("_", ".")))
        renamed[short + "." + part] = v
    save_file(renamed, str(tmp_path / "short.safetensors"))
    # underscores inside names (q_proj) cannot be inverted blindly: build the map from the base names
    base_names = [k[:-7] for k in load_file(str(BASE)) if k.endswith(".weight")]
    by_key = {n.replace(".", "_"): n for n in base_names}
    (tmp_path / "map.json").write_text(json.dumps({s: by_key[p.removeprefix("lora_unet_")] for p, (s, _) in mapping.items()}))
    out = tmp_path / "merged.safetensors"
    proc = scalpel.run("merge", BASE, tmp_path / "short.safetensors", "-o", out, check=False)
    assert proc.returncode == 1 and "which is not in the base" in proc.stderr
    scalpel.run("merge", BASE, tmp_path / "short.safetensors", "-o", out, "--map", tmp_path / "map.json")
    assert_close(out, FIX / "merged" / "lora" / "model.safetensors")


def test_convert_round_trip_peft_kohya_peft(scalpel, tmp_path):
    scalpel.run("convert-adapter", FIX / "adapters" / "lora", tmp_path / "k.safetensors", "--to", "kohya")
    k = load_file(str(tmp_path / "k.safetensors"))
    src = load_file(str(FIX / "adapters" / "lora" / "adapter_model.safetensors"))
    key = "lora_unet_model_layers_0_self_attn_q_proj"
    assert np.array_equal(k[key + ".lora_down.weight"], src[PEFT_PREFIX + "model.layers.0.self_attn.q_proj.lora_A.weight"])
    assert k[key + ".alpha"].shape == ()
    scalpel.run("convert-adapter", tmp_path / "k.safetensors", tmp_path / "back", "--to", "peft")
    back = load_file(str(tmp_path / "back" / "adapter_model.safetensors"))
    assert set(back) == set(src) and all(np.array_equal(back[n], src[n]) for n in src)
    scalpel.run("merge", BASE, tmp_path / "back", "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", FIX / "merged" / "lora" / "model.safetensors")
    # a kohya file without Scalpel's path record converts back given the base
    scalpel.run("convert-adapter", FIX / "kohya" / "lora.safetensors", tmp_path / "back2", "--to", "peft", "--base", BASE)
    scalpel.run("merge", BASE, tmp_path / "back2", "-o", tmp_path / "m2.safetensors")
    assert_close(tmp_path / "m2.safetensors", FIX / "merged" / "lora" / "model.safetensors")
    proc = scalpel.run("convert-adapter", FIX / "kohya" / "lora.safetensors", tmp_path / "back3", "--to", "peft", check=False)
    assert proc.returncode == 1 and "--base" in proc.stderr and not (tmp_path / "back3").exists()


def llama_permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: rows as [heads, 2, d/2] with the last two axes swapped."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


GGUF_NAMES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
              "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    parts = hf.split(".")
    if parts[0] == "model" and parts[1] == "layers":
        rest = ".".join(parts[3:])
        leaf = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight"}.get(rest)
        if leaf is None:
            leaf = GGUF_NAMES[parts[4]] + "." + parts[5]
        return f"blk.{parts[2]}.{leaf}"
    raise KeyError(hf)


def write_gguf_llama(path, hf_tensors):
    """A GGUF Llama as llama.cpp's converter lays it out (names, q/k rows permuted), f32."""
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_uint32("llama.attention.head_count", 4)
    w.add_uint32("llama.attention.head_count_kv", 2)
    for k, v in hf_tensors.items():
        v = v.astype(np.float32)
        if k.endswith("q_proj.weight"):
            v = llama_permute(v, 4)
        elif k.endswith("k_proj.weight"):
            v = llama_permute(v, 2)
        w.add_tensor(gguf_name(k), np.ascontiguousarray(v))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_convert_round_trip_peft_gguf_peft(scalpel, tmp_path):
    base = load_file(str(BASE))
    write_gguf_llama(tmp_path / "base.gguf", base)
    merged = load_file(str(FIX / "merged" / "lora" / "model.safetensors"))
    write_gguf_llama(tmp_path / "want.gguf", merged)
    scalpel.run("convert-adapter", FIX / "adapters" / "lora", tmp_path / "lora.gguf", "--to", "gguf", "--base", tmp_path / "base.gguf")
    # merged into the GGUF base, the GGUF LoRA gives PEFT's merge in llama.cpp's layout
    scalpel.run("merge", tmp_path / "base.gguf", tmp_path / "lora.gguf", "-o", tmp_path / "merged.gguf")
    import gguf
    got = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(tmp_path / "merged.gguf")).tensors}
    want = {t.name: np.array(t.data) for t in gguf.GGUFReader(str(tmp_path / "want.gguf")).tensors}
    for k in want:
        err = np.linalg.norm(got[k] - want[k]) / np.linalg.norm(want[k])
        assert err <= 1e-6, f"{k}: {err:.3g}"
    scalpel.run("convert-adapter", tmp_path / "lora.gguf", tmp_path / "back", "--to", "peft", "--base", tmp_path / "base.gguf")
    scalpel.run("merge", BASE, tmp_path / "back", "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", FIX / "merged" / "lora" / "model.safetensors")


@pytest.mark.parametrize("name", ["loha", "lokr", "adalora"])
def test_stack_svd_turns_a_family_into_lora(scalpel, tmp_path, name):
    out = tmp_path / "lora"
    scalpel.run("stack", FIX / "adapters" / name, "-o", out, "--method", "svd", "--rank", "16")
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    scalpel.run("merge", BASE, out, "-o", tmp_path / "m.safetensors")
    # rank 16 holds every module's update exactly (LoHa r^2 = 16, LoKr's Kronecker ranks, AdaLoRA r <= 6)
    assert_close(tmp_path / "m.safetensors", FIX / "merged" / name / "model.safetensors", rtol=1e-5)


def test_stack_ia3_without_base_names_adapter_and_module(scalpel, tmp_path):
    proc = scalpel.run("stack", FIX / "adapters" / "ia3", "-o", tmp_path / "o", "--method", "svd", "--rank", "4", check=False)
    line = one_error_line(proc)
    assert str(FIX / "adapters" / "ia3") in line and "module model.layers.0.mlp.down_proj is IA3" in line
    assert "--base MODEL" in line and not (tmp_path / "o").exists()


SPECTRA = {
    "model.layers.0.self_attn.q_proj": [8, 4, 2, 1, 0.5, 0.25, 0.1, 0.05],
    "model.layers.0.mlp.up_proj": [3, 2.9, 2.8, 0.01, 0.005, 0.002, 0.001, 0.0005],
}


def planted_adapter(folder, alpha=16):
    """A PEFT LoRA (r 8, lora_alpha alpha) whose modules' updates have exactly SPECTRA's singular values."""
    rng = np.random.default_rng(5)
    base = load_file(str(BASE))
    tensors, deltas = {}, {}
    r = 8
    for path, s in SPECTRA.items():
        out_f, in_f = base[path + ".weight"].shape
        u, _ = np.linalg.qr(rng.standard_normal((out_f, r)))
        v, _ = np.linalg.qr(rng.standard_normal((in_f, r)))
        s = np.array(s)
        scaling = alpha / r
        tensors[PEFT_PREFIX + path + ".lora_B.weight"] = (u * s / scaling).astype(np.float32)
        tensors[PEFT_PREFIX + path + ".lora_A.weight"] = v.T.astype(np.float32).copy()
        deltas[path] = (u, s, v)
    folder.mkdir()
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": ["q_proj", "up_proj"], "task_type": "CAUSAL_LM"}))
    return deltas


def tail_error(s, k):
    s = np.array(s, dtype=np.float64)
    return np.sqrt(np.sum(s[k:] ** 2) / np.sum(s ** 2))


@pytest.mark.parametrize("flags,ranks", [
    (["--rank", "3"], [3, 3]),
    (["--dynamic", "sv_ratio", "--dynamic-param", "10"], [5, 4]),     # kohya: #{s > s1/10} + 1
    (["--dynamic", "sv_fro", "--dynamic-param", "0.9"], [2, 3]),      # first cumsum(s^2)/sum >= 0.81, + 1
    (["--dynamic", "sv_cumulative", "--dynamic-param", "0.9"], [4, 3]),
    (["--sv-epsilon", "0.3"], [5, 3]),                                # mergekit: #{s > eps}
    (["--dynamic", "sv_ratio", "--dynamic-param", "10", "--rank", "2"], [2, 2]),
])
def test_resize_planted_spectra(scalpel, tmp_path, flags, ranks):
    deltas = planted_adapter(tmp_path / "in")
    out = tmp_path / "out"
    proc = scalpel.run("resize", tmp_path / "in", "-o", out, *flags, "--json")
    report = json.loads(proc.stdout)
    by_module = {m["module"]: m for m in report["modules"]}
    base = load_file(str(BASE))
    want = dict(base)
    for (path, (u, s, v)), k in zip(deltas.items(), ranks):
        m = by_module[path]
        assert (m["old_rank"], m["rank"]) == (8, k), path
        assert abs(m["relative_error"] - tail_error(s, k)) <= 1e-5 * max(1, tail_error(s, k)), path
        want[path + ".weight"] = (base[path + ".weight"].astype(np.float64) + (u[:, :k] * s[:k]) @ v[:, :k].T).astype(np.float32)
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"
    scalpel.run("merge", BASE, out, "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", want, rtol=1e-5)


def test_resize_text_report_and_every_family(scalpel, tmp_path):
    proc = scalpel.run("resize", FIX / "adapters" / "loha", "-o", tmp_path / "o", "--rank", "16")
    assert "model.layers.0.self_attn.q_proj" in proc.stdout and "4 -> 16" in proc.stdout
    scalpel.run("merge", BASE, tmp_path / "o", "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", FIX / "merged" / "loha" / "model.safetensors", rtol=1e-5)
    line = one_error_line(scalpel.run("resize", FIX / "adapters" / "ia3", "-o", tmp_path / "o2", "--rank", "2", check=False))
    assert "IA3" in line and "--base MODEL" in line and not (tmp_path / "o2").exists()


TORCH_PYTHON = os.environ.get("SCALPEL_TORCH_PYTHON", sys.executable)

PEFT_MERGE = """
import sys, torch, transformers, peft
from safetensors.torch import save_file
base, adapter, out = sys.argv[1:4]
model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
merged = peft.PeftModel.from_pretrained(model, adapter).merge_and_unload()
save_file({k: v.detach().contiguous() for k, v in merged.state_dict().items()}, out)
"""


def peft_merge(base_folder, adapter, out):
    """PEFT's own load + merge_and_unload of `adapter` into `base_folder`, saved to `out` (safetensors).
    Runs in SCALPEL_TORCH_PYTHON (default: the Python running the tests, whose venv `make test` fills with
    torch, transformers and peft); skips when that Python cannot import them."""
    python = TORCH_PYTHON
    probe = subprocess.run([python, "-c", "import torch, transformers, peft"], capture_output=True) if os.access(python, os.X_OK) else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"{python} cannot import torch, transformers, peft (make py-oracle-deps, or set SCALPEL_TORCH_PYTHON)")
    proc = subprocess.run([python, "-c", PEFT_MERGE, str(base_folder), str(adapter), str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "missing adapter keys" not in proc.stderr, proc.stderr[-3000:]
    return load_file(str(out))


def test_peft_loads_resize_output(scalpel, tmp_path):
    scalpel.run("resize", FIX / "adapters" / "loha", "-o", tmp_path / "o", "--dynamic", "sv_fro", "--dynamic-param", "0.95")
    theirs = peft_merge(FIX / "base", tmp_path / "o", tmp_path / "peft.safetensors")
    scalpel.run("merge", BASE, tmp_path / "o", "-o", tmp_path / "m.safetensors")
    ours = load_file(str(tmp_path / "m.safetensors"))
    assert set(ours) == set(theirs)
    for k, w in theirs.items():
        assert np.linalg.norm(ours[k] - w) <= 1e-6 * max(np.linalg.norm(w), 1e-30), k


def test_convert_to_gguf_matches_llamacpp_converter(scalpel, tmp_path):
    """llama.cpp's convert_lora_to_gguf.py output for a plain LoRA (fixtures/adapters/llamacpp/plain_a.gguf):
    same tensor names, shapes, values (q/k rows reordered) and alpha."""
    import gguf
    peft = REPO / "fixtures" / "peft"
    write_gguf_llama(tmp_path / "base.gguf", load_file(str(peft / "llama_base" / "model.safetensors")))
    scalpel.run("convert-adapter", peft / "adapters" / "plain_a", tmp_path / "ours.gguf", "--to", "gguf", "--base", tmp_path / "base.gguf")

    def read(path):
        r = gguf.GGUFReader(str(path))
        alpha = r.fields["adapter.lora.alpha"]
        return {t.name: np.array(t.data) for t in r.tensors}, float(alpha.parts[alpha.data[0]][0])

    ours, ours_alpha = read(tmp_path / "ours.gguf")
    theirs, theirs_alpha = read(FIX / "llamacpp" / "plain_a.gguf")
    assert ours_alpha == theirs_alpha == 8.0
    assert set(ours) == set(theirs)
    for k in theirs:
        assert np.array_equal(ours[k], theirs[k]), k


def test_stack_svd_mixes_families(scalpel, tmp_path):
    """LoRA + LoHa + AdaLoRA stacked by svd at a rank that holds their sum equals merging them in turn."""
    a = [FIX / "adapters" / n for n in ("lora", "loha", "adalora")]
    scalpel.run("stack", *a, "-o", tmp_path / "s", "--method", "svd", "--rank", "32")
    scalpel.run("merge", BASE, tmp_path / "s", "-o", tmp_path / "m.safetensors")
    scalpel.run("merge", BASE, *a, "-o", tmp_path / "want.safetensors")
    assert_close(tmp_path / "m.safetensors", tmp_path / "want.safetensors", rtol=1e-5)


def test_resize_kohya_file_keeps_kohya_and_needs_paths_for_peft(scalpel, tmp_path):
    kohya = FIX / "kohya" / "lora.safetensors"
    scalpel.run("resize", kohya, "-o", tmp_path / "small.safetensors", "--rank", "2")
    small = load_file(str(tmp_path / "small.safetensors"))
    assert small["lora_unet_model_layers_0_mlp_down_proj.lora_down.weight"].shape == (2, 64)
    proc = scalpel.run("resize", kohya, "-o", tmp_path / "p", "--rank", "2", check=False)
    assert proc.returncode == 1 and "--base" in proc.stderr and not (tmp_path / "p").exists()
    scalpel.run("resize", kohya, "-o", tmp_path / "p", "--rank", "8", "--base", BASE)
    scalpel.run("merge", BASE, tmp_path / "p", "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", FIX / "merged" / "lora" / "model.safetensors", rtol=1e-5)


def one_error_line(proc):
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalpel: error: "), proc.stderr
    return lines[0]


def test_bad_family_inputs_fail_with_one_line(scalpel, tmp_path):
    # a LoHa module without one of its four factors
    bad = tmp_path / "loha"
    shutil.copytree(FIX / "adapters" / "loha", bad)
    t = load_file(str(bad / "adapter_model.safetensors"))
    del t[PEFT_PREFIX + "model.layers.0.self_attn.q_proj.hada_w2_b"]
    save_file(t, str(bad / "adapter_model.safetensors"))
    line = one_error_line(scalpel.run("merge", BASE, bad, "-o", tmp_path / "o.safetensors", check=False))
    assert "module model.layers.0.self_attn.q_proj lacks its hada_w2_b" in line
    # a PEFT type Scalpel does not read
    vera = tmp_path / "vera"
    shutil.copytree(FIX / "adapters" / "loha", vera)
    cfg = json.loads((vera / "adapter_config.json").read_text())
    cfg["peft_type"] = "VERA"
    (vera / "adapter_config.json").write_text(json.dumps(cfg))
    line = one_error_line(scalpel.run("inspect", vera, check=False))
    assert "peft_type VERA is not supported (LORA, ADALORA, IA3, LOHA, LOKR" in line
    # a kohya alpha that is not a scalar
    k = load_file(str(FIX / "kohya" / "lora.safetensors"))
    k["lora_unet_model_layers_0_mlp_down_proj.alpha"] = np.ones(2, dtype=np.float32)
    save_file(k, str(tmp_path / "k.safetensors"))
    line = one_error_line(scalpel.run("merge", BASE, tmp_path / "k.safetensors", "-o", tmp_path / "o.safetensors", check=False))
    assert "lora_unet_model_layers_0_mlp_down_proj.alpha: has shape [2], expected a scalar" in line
    # DoRA has no kohya or GGUF form
    line = one_error_line(scalpel.run("convert-adapter", FIX / "adapters" / "dora", tmp_path / "d.safetensors", "--to", "kohya", check=False))
    assert "DoRA" in line
    assert not any((tmp_path / n).exists() for n in ("o.safetensors", "d.safetensors"))


# IA3 written as a plain LoRA against its base (stack --base, resize --base): D = W * (l - 1), and the
# bias change b * (l - 1) of the row-scaling modules as the module's lora_B bias (lora_bias).
IA3_CASES = {
    "ia3": (BASE, FIX / "merged" / "ia3" / "model.safetensors"),
    "ia3_gpt2": (REPO / "fixtures" / "peft" / "gpt2_base" / "model.safetensors", FIX / "merged" / "ia3_gpt2" / "model.safetensors"),
}


@pytest.mark.parametrize("name", list(IA3_CASES))
@pytest.mark.parametrize("command", ["stack", "resize"])
def test_ia3_full_rank_lora_merges_to_peft_merge(scalpel, tmp_path, name, command):
    """The full-rank LoRA of an IA3 adapter, merged, equals PEFT's merge_and_unload of the IA3 adapter
    (Llama: rows + bias and input columns; GPT-2: the same through fan_in_fan_out Conv1D weights)."""
    base, want = IA3_CASES[name]
    out = tmp_path / "lora"
    if command == "stack":
        proc = scalpel.run("stack", FIX / "adapters" / name, "-o", out, "--method", "svd", "--rank", "256", "--base", base, "--json")
        report = json.loads(proc.stdout)
        assert report["truncation"]["relative_error"] <= 1e-6
    else:
        proc = scalpel.run("resize", FIX / "adapters" / name, "-o", out, "--rank", "256", "--base", base, "--json")
        report = json.loads(proc.stdout)
        assert all(m["old_rank"] == 1 and m["relative_error"] <= 1e-6 for m in report["modules"])
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["lora_bias"] is True
    scalpel.run("merge", base, out, "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", want, rtol=1e-5)


def ia3_deltas(name):
    """PEFT's merged weight minus the base weight, per IA3 module, in PEFT's [out, in] orientation."""
    base_path, merged_path = IA3_CASES[name]
    base, merged = load_file(str(base_path)), load_file(str(merged_path))
    fifo = json.loads((FIX / "adapters" / name / "adapter_config.json").read_text())["fan_in_fan_out"]
    deltas = {}
    for k in load_file(str(FIX / "adapters" / name / "adapter_model.safetensors")):
        path = k[len(PEFT_PREFIX):-len(".ia3_l")]
        d = merged[path + ".weight"].astype(np.float64) - base[path + ".weight"].astype(np.float64)
        deltas[path] = d.T if fifo else d
    return deltas


@pytest.mark.parametrize("name", list(IA3_CASES))
def test_ia3_resize_low_rank_error_is_svd_tail(scalpel, tmp_path, name):
    base, _ = IA3_CASES[name]
    k = 3
    proc = scalpel.run("resize", FIX / "adapters" / name, "-o", tmp_path / "o", "--rank", str(k), "--base", base, "--json")
    by_module = {m["module"]: m for m in json.loads(proc.stdout)["modules"]}
    deltas = ia3_deltas(name)
    assert set(by_module) == set(deltas)
    want = load_file(str(base))
    fifo = json.loads((FIX / "adapters" / name / "adapter_config.json").read_text())["fan_in_fan_out"]
    for path, d in deltas.items():
        s = np.linalg.svd(d, compute_uv=False)
        assert by_module[path]["rank"] == k
        assert abs(by_module[path]["relative_error"] - tail_error(s, k)) <= 1e-5, path
        u, s_, vt = np.linalg.svd(d, full_matrices=False)
        t = (u[:, :k] * s_[:k]) @ vt[:k]
        want[path + ".weight"] = (want[path + ".weight"].astype(np.float64) + (t.T if fifo else t)).astype(np.float32)
    # the bias change is exact (not truncated): PEFT's merged biases
    merged = load_file(str(IA3_CASES[name][1]))
    for key in want:
        if key.endswith(".bias"):
            want[key] = merged[key]
    scalpel.run("merge", base, tmp_path / "o", "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", want, rtol=1e-5)


def test_ia3_stack_with_lora_and_weights(scalpel, tmp_path):
    """IA3 at weight 0.5 with a LoRA, stacked exactly (cat) against the base, merges as merging both does."""
    ia3, lora = FIX / "adapters" / "ia3", FIX / "adapters" / "lora"
    scalpel.run("stack", f"{ia3}:0.5", lora, "-o", tmp_path / "s", "--base", BASE)
    scalpel.run("merge", BASE, tmp_path / "s", "-o", tmp_path / "m.safetensors")
    scalpel.run("merge", BASE, f"{ia3}:0.5", lora, "-o", tmp_path / "want.safetensors")
    assert_close(tmp_path / "m.safetensors", tmp_path / "want.safetensors", rtol=1e-6)


def test_peft_loads_ia3_as_lora(scalpel, tmp_path):
    """PEFT loads the full-rank LoRA (with lora_bias) of the IA3 adapter, and its merge_and_unload equals its
    merge of the IA3 adapter itself."""
    scalpel.run("resize", FIX / "adapters" / "ia3", "-o", tmp_path / "o", "--rank", "64", "--base", BASE)
    theirs = peft_merge(FIX / "base", tmp_path / "o", tmp_path / "peft.safetensors")
    want = load_file(str(FIX / "merged" / "ia3" / "model.safetensors"))
    assert set(theirs) == set(want)
    for k, w in want.items():
        assert np.linalg.norm(theirs[k] - w) <= 1e-5 * max(np.linalg.norm(w), 1e-30), k


def test_ia3_base_problems_fail_with_one_line(scalpel, tmp_path):
    ia3 = FIX / "adapters" / "ia3"
    base = load_file(str(BASE))
    # the base lacks a target module
    missing = dict(base)
    del missing["model.layers.1.mlp.up_proj.weight"]
    save_file(missing, str(tmp_path / "missing.safetensors"))
    line = one_error_line(scalpel.run("resize", ia3, "-o", tmp_path / "o", "--rank", "4", "--base", tmp_path / "missing.safetensors", check=False))
    assert f"{ia3}: base_model.model.model.layers.1.mlp.up_proj.ia3_l: module model.layers.1.mlp.up_proj is IA3" in line
    assert "which is not in the base" in line
    # a weight whose shape disagrees with the vector
    wrong = dict(base)
    wrong["model.layers.0.self_attn.v_proj.weight"] = np.zeros((8, 32), dtype=np.float32)
    save_file(wrong, str(tmp_path / "wrong.safetensors"))
    line = one_error_line(scalpel.run("stack", ia3, "-o", tmp_path / "o", "--method", "svd", "--rank", "4", "--base", tmp_path / "wrong.safetensors", check=False))
    assert "module model.layers.0.self_attn.v_proj is IA3 with a vector of length 16 scaling output rows" in line and "[8, 32]" in line
    assert not (tmp_path / "o").exists()


def test_merge_ia3_fan_in_fan_out_matches_peft(scalpel, tmp_path):
    base, want = IA3_CASES["ia3_gpt2"]
    scalpel.run("merge", base, FIX / "adapters" / "ia3_gpt2", "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", want)


def test_stack_kohya_file_with_peft_families(scalpel, tmp_path):
    """A kohya file stacks with PEFT adapters once its module paths are known (--base or --map)."""
    kohya, loha = FIX / "kohya" / "lora.safetensors", FIX / "adapters" / "loha"
    line = one_error_line(scalpel.run("stack", kohya, loha, "-o", tmp_path / "s", "--method", "svd", "--rank", "32", check=False))
    assert "--base" in line and not (tmp_path / "s").exists()
    scalpel.run("stack", kohya, loha, "-o", tmp_path / "s", "--method", "svd", "--rank", "32", "--base", BASE)
    scalpel.run("merge", BASE, tmp_path / "s", "-o", tmp_path / "m.safetensors")
    scalpel.run("merge", BASE, FIX / "adapters" / "lora", loha, "-o", tmp_path / "want.safetensors")
    assert_close(tmp_path / "m.safetensors", tmp_path / "want.safetensors", rtol=1e-5)


def test_convert_adapter_ia3_needs_a_base(scalpel, tmp_path):
    ia3 = FIX / "adapters" / "ia3"
    line = one_error_line(scalpel.run("convert-adapter", ia3, tmp_path / "p", "--to", "peft", check=False))
    assert "is IA3" in line and "--base MODEL" in line
    scalpel.run("convert-adapter", ia3, tmp_path / "p", "--to", "peft", "--base", BASE)
    scalpel.run("merge", BASE, tmp_path / "p", "-o", tmp_path / "m.safetensors")
    assert_close(tmp_path / "m.safetensors", FIX / "merged" / "ia3" / "model.safetensors", rtol=1e-6)
    # kohya has no lora_B bias, and this base's k/v projections have biases that IA3 scales
    line = one_error_line(scalpel.run("convert-adapter", ia3, tmp_path / "k.safetensors", "--to", "kohya", "--base", BASE, check=False))
    assert "lora_bias" in line and not (tmp_path / "k.safetensors").exists()
