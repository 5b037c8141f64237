"""inspect --estimate TYPE: the size quantize --type TYPE writes, from the header alone, within 0.1% (in
practice exact but for the bitsandbytes double-quant state) for every type on the real MiniLM."""
import json

import pytest

import subprocess
from conftest import REPO

BASE_TYPES = ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f32", "f16", "bf16", "nf4", "fp4", "int8", "int4"]


def all_types():
    """Every type and preset the binary estimates (`--estimate all`), so presets are covered as they land."""
    import os
    binary = os.environ.get("SCALPEL_BIN", str(REPO / ".build" / "release" / "scalpel"))
    model = os.environ.get("SCALPEL_MODEL")
    if not model:
        return BASE_TYPES
    try:
        out = subprocess.run([binary, "inspect", model, "--estimate", "all", "--json"], capture_output=True, text=True, timeout=600)
        return [e["type"] for e in json.loads(out.stdout)["estimates"]]
    except Exception:
        return BASE_TYPES


@pytest.mark.parametrize("qtype", all_types())
def test_estimate_equals_quantize_output(scalpel, tmp, model_path, qtype):
    est = scalpel.inspect(model_path, "--estimate", qtype)
    out = tmp / ("out.gguf" if est["estimate"]["layout"] == "gguf" else "out.safetensors")
    rep = json.loads(scalpel.run("quantize", model_path, out, "--type", qtype, "--json").stdout)
    real = out.stat().st_size
    assert est["estimated_bytes"] == pytest.approx(real, rel=1e-3)
    assert est["estimated_bytes"] == real  # exact for these layouts
    assert est["estimate"]["bits_per_weight"] == pytest.approx(rep["bits_per_parameter"], rel=1e-3)


def test_estimate_all_lists_every_type(scalpel, model_path):
    r = scalpel.inspect(model_path, "--estimate", "all")
    assert [e["type"] for e in r["estimates"]][:len(BASE_TYPES)] == BASE_TYPES
    text = scalpel.run("inspect", model_path, "--estimate", "q4_0").stdout
    assert "estimated size after quantize" in text and "q4_0" in text


def test_estimate_reads_only_the_header(scalpel, tmp, model_path):
    """A zstd-compressed input is estimated from its decompressed header alone (no tensor data exists
    in a header-only open), and equals the uncompressed file's estimate."""
    zst = scalpel.convert(model_path, tmp / "m.safetensors.zst")
    for qtype in ("q4_0", "nf4", "int4"):
        assert scalpel.inspect(zst, "--estimate", qtype)["estimated_bytes"] == \
            scalpel.inspect(model_path, "--estimate", qtype)["estimated_bytes"]


@pytest.mark.xfail(reason="a GGUF input is quantized with llama.cpp's per-tensor rules (the presets of issue 11), "
                          "which --estimate does not apply yet", strict=False)
def test_estimate_of_a_quantized_gguf(scalpel, tmp, model_path):
    """Requantizing a Q8_0 GGUF: the blocks are dequantized first, 1-D tensors stay F32."""
    q8 = tmp / "q8.gguf"
    scalpel.run("quantize", model_path, q8, "--type", "q8_0")
    for qtype in ("q4_0", "q8_0"):
        est = scalpel.inspect(q8, "--estimate", qtype)["estimated_bytes"]
        out = tmp / f"{qtype}.gguf"
        scalpel.run("quantize", q8, out, "--type", qtype, "--allow-requantize")
        assert est == out.stat().st_size
