"""inspect --estimate TYPE: the size quantize --type TYPE writes, from the header alone, for every tensor type
and every llama-quantize preset Scalpel has, on the real MiniLM safetensors and on GGUF inputs (llama.cpp's
per-tensor rules; an already quantized GGUF requantized with --allow-requantize). The contract is 0.1%; every
case is exact (the one data-dependent byte count, the printed nested_offset of bitsandbytes double
quantization, is not a default). `quantize --dry-run` predicts the same bytes, and the estimate's bits per
weight is the quantize report's.

The GGUF inputs: `scalpel convert FOLDER x.gguf` (llama.cpp's names, always available) and, when the
llama.cpp oracle and the torch venv exist (see test_presets.py), llama.cpp's own convert_hf_to_gguf.py and
llama-quantize; llama-quantize's output file for each preset is then the same size as the estimate.
"""
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

# Every name `--estimate all` lists: the tensor types, then the presets that are not a tensor type's name
# (q8_0, q4_0 ... q2_k, q6_k, iq4_nl, iq4_xs, f32, f16, bf16 are also presets: Q8_0 and q8_0 are the same run).
TENSOR_TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "iq4_nl", "iq4_xs",
                "f32", "f16", "bf16", "nf4", "fp4", "int8", "int4"]
PRESETS = ["Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M"]
ALL = TENSOR_TYPES + PRESETS
# The types a GGUF input can be quantized to in a GGUF (the safetensors layouts are covered from MiniLM).
GGUF_TYPES = [t for t in ALL if t not in ("nf4", "fp4", "int8", "int4")]

LLAMACPP_BIN = Path(os.environ.get("LLAMACPP_BIN", Path.home() / ".cache" / "scalpel" / "llamacpp-0.3.36" / "bin"))
TORCH_PYTHON = os.environ.get("SCALPEL_TORCH_PYTHON", "/tmp/venv-torch/bin/python")


def check(scalpel, tmp, src, qtype, *flags):
    """Estimate, --dry-run and the real output of `quantize SRC --type QTYPE FLAGS`; returns (estimate, output)."""
    est = scalpel.inspect(src, "--estimate", qtype)
    out = tmp / (f"{qtype}.gguf" if est["estimate"]["layout"] == "gguf" else f"{qtype}.safetensors")
    dry = json.loads(scalpel.run("quantize", src, out, "--type", qtype, "--dry-run", "--json", *flags).stdout)
    rep = json.loads(scalpel.run("quantize", src, out, "--type", qtype, "--json", *flags).stdout)
    real = out.stat().st_size
    assert est["estimated_bytes"] == pytest.approx(real, rel=1e-3)  # the contract
    assert est["estimated_bytes"] == real, f"{qtype}: estimate {est['estimated_bytes']}, quantize wrote {real}"
    assert dry["predicted_bytes"] == real
    assert est["estimated_bits_per_weight"] == pytest.approx(rep["bits_per_parameter"], rel=1e-3)
    if qtype.lower() != "f32":  # (casts to F32 measure no error, so the report does not count them as quantized)
        assert est["estimate"]["tensors_quantized"] == rep["tensors_quantized"]
    out.unlink()
    return est, real


@pytest.mark.parametrize("qtype", ALL)
def test_estimate_equals_quantize_output(scalpel, tmp, model_path, qtype):
    check(scalpel, tmp, model_path, qtype)


def test_estimate_all_lists_every_type_and_preset(scalpel, model_path):
    r = scalpel.inspect(model_path, "--estimate", "all")
    assert [e["type"] for e in r["estimates"]] == ALL
    by = {e["type"]: e for e in r["estimates"]}
    # Presets are llama.cpp's mixes: Q4_K_M keeps more bits than Q4_K_S, and Q3_K_L than Q3_K_M than Q3_K_S.
    assert by["Q3_K_S"]["estimated_bytes"] < by["Q3_K_M"]["estimated_bytes"] < by["Q3_K_L"]["estimated_bytes"]
    assert by["Q4_K_S"]["estimated_bytes"] < by["Q4_K_M"]["estimated_bytes"]
    # A preset named like a tensor type is that run, in any case.
    for name in ("Q8_0", "Q2_K", "Q6_K", "F16"):
        assert scalpel.inspect(model_path, "--estimate", name)["estimated_bytes"] == by[name.lower()]["estimated_bytes"]
    text = scalpel.run("inspect", model_path, "--estimate", "Q4_K_M").stdout
    assert "estimated size after quantize" in text and "Q4_K_M" in text and "output tensors:" in text


def test_estimate_rejects_unknown_types(scalpel, model_path):
    proc = scalpel.run("inspect", model_path, "--estimate", "q7_k", check=False)
    assert proc.returncode != 0 and "Q4_K_M" in proc.stderr


def test_estimate_reads_only_the_header(scalpel, tmp, model_path):
    """A zstd-compressed input is estimated from its decompressed header alone (no tensor data exists
    in a header-only open), and equals the uncompressed file's estimate."""
    zst = scalpel.convert(model_path, tmp / "m.safetensors.zst")
    for qtype in ("q4_0", "nf4", "int4", "Q4_K_M"):
        assert scalpel.inspect(zst, "--estimate", qtype)["estimated_bytes"] == \
            scalpel.inspect(model_path, "--estimate", qtype)["estimated_bytes"]


@pytest.fixture(scope="module")
def hf_folder(model_path, tmp_path_factory):
    """The MiniLM folder as the GGUF converters need it: its files copied (scalpel refuses shards that are
    links out of the folder) plus 1_Pooling/config.json, which `make model` does not extract, from its wheel."""
    folder = model_path.parent
    wheels = sorted((folder.parent.parent / "dl").glob("*.whl"))
    if not wheels or not (folder / "config.json").exists() or not (folder / "vocab.txt").exists():
        pytest.skip(f"{folder} lacks config.json / vocab.txt, or {folder.parent.parent / 'dl'} its wheel (make model)")
    hf = tmp_path_factory.mktemp("estimate-hf") / "all-MiniLM-L6-v2"
    (hf / "1_Pooling").mkdir(parents=True)
    for f in folder.iterdir():
        if f.is_file():
            shutil.copyfile(f, hf / f.name)
    with zipfile.ZipFile(wheels[0]) as z:
        (hf / "1_Pooling" / "config.json").write_bytes(
            z.read(next(n for n in z.namelist() if n.endswith("1_Pooling/config.json"))))
    return hf


@pytest.fixture(scope="module")
def scalpel_gguf(scalpel, hf_folder):
    """MiniLM as GGUF with llama.cpp's names, by `scalpel convert FOLDER x.gguf`."""
    out = hf_folder.parent / "minilm.gguf"
    scalpel.run("convert", hf_folder, out)
    return out


@pytest.mark.parametrize("qtype", GGUF_TYPES)
def test_estimate_of_a_gguf(scalpel, tmp, scalpel_gguf, qtype):
    """A GGUF input is quantized with llama.cpp's per-tensor rules: the estimate applies the same ones."""
    check(scalpel, tmp, scalpel_gguf, qtype)


def test_estimate_of_a_quantized_gguf(scalpel, tmp, model_path):
    """Requantizing a Q8_0 GGUF (Scalpel's selection: linear weights Q8_0, the rest F32): llama.cpp's rules
    apply, already quantized tensors are requantized (quantize needs --allow-requantize; the estimate says
    how many), kept tensors stay as stored."""
    q8 = tmp / "q8.gguf"
    scalpel.run("quantize", model_path, q8, "--type", "q8_0")
    for qtype in ("q4_0", "q8_0", "Q4_K_M", "q6_k", "f16"):
        est, _ = check(scalpel, tmp, q8, qtype, "--allow-requantize")
        assert (est["estimate"]["tensors_requantized"] > 0) == (qtype not in ("q8_0",))


@pytest.mark.parametrize("qtype", ["q8_0", "Q4_K_M", "q2_k", "IQ4_XS", "f16", "nf4"])
def test_estimate_of_a_model_folder(scalpel, tmp, hf_folder, qtype):
    """`quantize FOLDER out.gguf` converts the folder to an F32 GGUF first (llama.cpp's names and metadata):
    the estimate lays out that file's header without converting any data."""
    check(scalpel, tmp, hf_folder, qtype)


# --- llama.cpp's own GGUFs and llama-quantize ---------------------------------------------------------------

@pytest.fixture(scope="module")
def llamacpp_gguf(hf_folder):
    """MiniLM by llama.cpp's convert_hf_to_gguf.py (F16), as test_presets.py makes it."""
    tools = [LLAMACPP_BIN / "convert_hf_to_gguf.py", LLAMACPP_BIN / "llama-quantize"]
    if not all(t.exists() for t in tools):
        pytest.skip(f"llama.cpp oracle not built at {LLAMACPP_BIN}: run `make llamacpp` (scripts/llamacpp.sh)")
    if subprocess.run([TORCH_PYTHON, "-c", "import torch, transformers"], capture_output=True).returncode != 0:
        pytest.skip(f"{TORCH_PYTHON} cannot import torch, transformers (needed by convert_hf_to_gguf.py)")
    gguf = hf_folder.parent / "minilm-f16-llamacpp.gguf"
    proc = subprocess.run([TORCH_PYTHON, tools[0], hf_folder, "--outtype", "f16", "--outfile", gguf], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return gguf


def llama_quantize(src, out, preset, *flags):
    proc = subprocess.run([LLAMACPP_BIN / "llama-quantize", *flags, src, out, preset, "2"], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.mark.parametrize("qtype", GGUF_TYPES)
def test_estimate_of_a_llamacpp_gguf(scalpel, tmp, llamacpp_gguf, qtype):
    check(scalpel, tmp, llamacpp_gguf, qtype)


@pytest.mark.parametrize("preset", ["Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "IQ4_NL", "IQ4_XS", "Q4_K_S", "Q4_K_M", "Q5_K_S",
                                    "Q5_K_M", "Q6_K", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "F16", "BF16", "F32"])
def test_estimate_equals_llama_quantize_output(scalpel, tmp, llamacpp_gguf, preset):
    """The estimate of a preset is also the size of the file llama-quantize itself writes."""
    est = scalpel.inspect(llamacpp_gguf, "--estimate", preset)
    ref = llama_quantize(llamacpp_gguf, tmp / "ref.gguf", preset)
    assert est["estimated_bytes"] == ref.stat().st_size


def test_estimate_of_a_llama_quantized_gguf(scalpel, tmp, llamacpp_gguf):
    """A Q4_K_M GGUF by llama-quantize, requantized: the same size as Scalpel's and llama-quantize's outputs."""
    q4km = llama_quantize(llamacpp_gguf, tmp / "q4km.gguf", "Q4_K_M")
    for qtype in ("Q8_0", "Q4_K_M", "q4_0", "Q2_K"):
        est, _ = check(scalpel, tmp, q4km, qtype, "--allow-requantize")
        ref = llama_quantize(q4km, tmp / "ref.gguf", qtype.upper(), "--allow-requantize")
        assert est["estimated_bytes"] == ref.stat().st_size, qtype
