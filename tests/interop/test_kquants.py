"""K-quants (Q2_K..Q6_K), and IQ4_NL / IQ4_XS on raw rows, against ggml itself.

The oracle is ggml's own `ggml_quantize_chunk` (ggml-base of the llama.cpp vendored by llama-cpp-python
0.3.36), called by our harness scripts/ggml_quant_harness.c, both built by `scripts/llamacpp.sh`
(`make llamacpp`) into ~/.cache/scalpel/llamacpp-0.3.36/bin. Scalpel's kernels are reached through
`scalpel-kernel-bench kquant ... --dump` (next to SCALPEL_BIN) for raw rows with and without importance
weights, and through `scalpel quantize --type q*_k` for whole files.

Environment: SCALPEL_LLAMACPP = the oracle's bin folder (default: the cache above). Tests skip, saying
why, when the harness is not there.
"""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file, load_file

from helpers import gguf_tensors

K_TYPES = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]
# The non-linear 4-bit types (KQuant.iq4Types); as `--type` and presets also in test_presets.py.
IQ4_TYPES = ["iq4_nl", "iq4_xs"]
TYPE_SIZE = {"q2_K": 84, "q3_K": 110, "q4_K": 144, "q5_K": 176, "q6_K": 210, "iq4_nl": 18, "iq4_xs": 136}
DEFAULT_BIN = Path.home() / ".cache" / "scalpel" / "llamacpp-0.3.36" / "bin"


@pytest.fixture(scope="session")
def harness() -> Path:
    folder = Path(os.environ.get("SCALPEL_LLAMACPP", DEFAULT_BIN))
    path = folder / "ggml-quant-harness"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(f"no ggml harness at {path}: run `make llamacpp` (scripts/llamacpp.sh) or set SCALPEL_LLAMACPP")
    return path


@pytest.fixture(scope="session")
def kernel_bench(scalpel_bin) -> Path:
    path = scalpel_bin.parent / "scalpel-kernel-bench"
    if not path.is_file():
        pytest.fail(f"no scalpel-kernel-bench next to {scalpel_bin} (swift build builds both)", pytrace=False)
    return path


def ggml_bytes(harness, qtype, x, tmp, imatrix=None):
    """ggml_quantize_chunk(qtype, x, imatrix) as bytes."""
    rows, cols = x.shape
    src, out = tmp / "ggml-in.f32", tmp / "ggml-out.bin"
    np.ascontiguousarray(x, dtype=np.float32).tofile(src)
    args = [str(harness), "quantize", qtype, str(rows), str(cols), str(src), str(out)]
    if imatrix is not None:
        np.ascontiguousarray(imatrix, dtype=np.float32).tofile(tmp / "ggml-im.f32")
        args.append(str(tmp / "ggml-im.f32"))
    subprocess.run(args, check=True, capture_output=True)
    return out.read_bytes()


def scalpel_bytes(kernel_bench, qtype, x, tmp, imatrix=None, threads=1):
    rows, cols = x.shape
    src, out = tmp / "s-in.f32", tmp / "s-out.bin"
    np.ascontiguousarray(x, dtype=np.float32).tofile(src)
    args = [str(kernel_bench), "kquant", qtype, str(rows), str(cols), str(threads), "1", str(src)]
    if imatrix is not None:
        np.ascontiguousarray(imatrix, dtype=np.float32).tofile(tmp / "s-im.f32")
        args.append(str(tmp / "s-im.f32"))
    proc = subprocess.run(args + ["--dump", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


def assert_same_blocks(qtype, got, want, label):
    assert len(got) == len(want), f"{qtype} {label}: {len(got)} bytes, ggml {len(want)}"
    if got == want:
        return
    a = np.frombuffer(got, np.uint8).reshape(-1, TYPE_SIZE[qtype])
    b = np.frombuffer(want, np.uint8).reshape(-1, TYPE_SIZE[qtype])
    bad = np.nonzero((a != b).any(axis=1))[0]
    first = bad[0]
    cols = np.nonzero(a[first] != b[first])[0][:10]
    pytest.fail(f"{qtype} {label}: {len(bad)} of {len(a)} super-blocks differ from ggml; first block {first}, "
                f"bytes {cols.tolist()}: scalpel {a[first][cols].tolist()} ggml {b[first][cols].tolist()}")


def odd_rows(rng):
    """Rows that exercise the corner cases of the searches (each 512 values)."""
    n = 512
    rows = {
        "zeros": np.zeros(n),
        "negative_zeros": -np.zeros(n),
        "one_huge": np.where(np.arange(n) == 37, 3.0e4, rng.standard_normal(n) * 1e-2),
        "one_huge_negative": np.where(np.arange(n) == 300, -7.5e3, rng.standard_normal(n)),
        "negative_only": -np.abs(rng.standard_normal(n)) - 0.5,
        "positive_only": np.abs(rng.standard_normal(n)) + 2.0,
        "constant": np.full(n, 0.25),
        "constant_negative": np.full(n, -1.5),
        "sparse": np.where(rng.random(n) < 0.05, rng.standard_normal(n), 0.0),
        "tiny": rng.standard_normal(n) * 1e-20,
        "subnormal_scale": rng.standard_normal(n) * 1e-38,
        "heavy_tail": rng.standard_t(2, n),
        "integers": rng.integers(-4, 4, n).astype(np.float64),
        "large": rng.standard_normal(n) * 1e4,
    }
    return np.stack([v.astype(np.float32) for v in rows.values()]), list(rows)


@pytest.mark.parametrize("qtype", K_TYPES + IQ4_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["ref", "imatrix"])
def test_random_rows_equal_ggml(harness, kernel_bench, tmp, qtype, weighted):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((12, 1024)).astype(np.float32) * rng.uniform(0.01, 3, (12, 1)).astype(np.float32)
    imatrix = rng.gamma(0.5, 2.0, 1024).astype(np.float32) if weighted else None
    assert_same_blocks(qtype, scalpel_bytes(kernel_bench, qtype, x, tmp, imatrix), ggml_bytes(harness, qtype, x, tmp, imatrix), "random")


@pytest.mark.parametrize("qtype", K_TYPES + IQ4_TYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["ref", "imatrix"])
def test_odd_rows_equal_ggml(harness, kernel_bench, tmp, qtype, weighted):
    rng = np.random.default_rng(5)
    x, names = odd_rows(rng)
    imatrix = None
    if weighted:  # zeros and a spike among the weights too
        imatrix = rng.random(x.shape[1]).astype(np.float32)
        imatrix[:40] = 0
        imatrix[100] = 1e6
    got = scalpel_bytes(kernel_bench, qtype, x, tmp, imatrix)
    want = ggml_bytes(harness, qtype, x, tmp, imatrix)
    per_row = len(want) // x.shape[0]
    for r, name in enumerate(names):
        assert_same_blocks(qtype, got[r * per_row:(r + 1) * per_row], want[r * per_row:(r + 1) * per_row], name)


@pytest.mark.parametrize("qtype", K_TYPES)
def test_real_minilm_rows_equal_ggml(harness, kernel_bench, tmp, model_path, qtype):
    w = load_file(str(model_path))["encoder.layer.0.output.dense.weight"]  # [384, 1536]
    x = np.ascontiguousarray(w[:96], dtype=np.float32)
    imatrix = (np.abs(w).mean(axis=0) ** 2).astype(np.float32)  # a plausible importance per column
    assert_same_blocks(qtype, scalpel_bytes(kernel_bench, qtype, x, tmp, threads=2), ggml_bytes(harness, qtype, x, tmp), "minilm")
    assert_same_blocks(qtype, scalpel_bytes(kernel_bench, qtype, x, tmp, imatrix, threads=2),
                       ggml_bytes(harness, qtype, x, tmp, imatrix), "minilm+imatrix")


@pytest.mark.parametrize("qtype", ["q4_k", "q2_k", "q6_k", "iq4_xs"])
def test_cli_quantize_k_types_and_fallback(scalpel, harness, tmp, qtype):
    """`scalpel quantize --type q*_k` (and iq4_xs): rows of 512 get the K type with ggml's bytes; rows of 96
    (not a multiple of 256) get llama.cpp's fallback type (IQ4_XS: IQ4_NL), also with ggml's bytes; 1-D
    tensors stay F32."""
    rng = np.random.default_rng(3)
    tensors = {"blk.0.ffn_down.weight": rng.standard_normal((64, 512)).astype(np.float32),
               "blk.0.attn_q.weight": rng.standard_normal((32, 96)).astype(np.float32),
               "blk.0.attn_norm.weight": rng.standard_normal(96).astype(np.float32)}
    src = tmp / "in.safetensors"
    save_file(tensors, str(src))
    out = tmp / "out.gguf"
    # --pure: every selected tensor gets the K type (without it, `q2_k` is llama-quantize's Q2_K preset,
    # whose per-tensor rules bump some tensors, test_presets.py).
    scalpel.run("quantize", src, out, "--type", qtype, "--only", "*.weight", "--pure")
    got = gguf_tensors(out)
    k = {"q4_k": "q4_K", "q2_k": "q2_K", "q6_k": "q6_K", "iq4_xs": "iq4_xs"}[qtype]
    fallback = {"q4_k": "q5_0", "q2_k": "q4_0", "q6_k": "q8_0", "iq4_xs": "iq4_nl"}[qtype]
    name, (gtype, shape, data, _) = "blk.0.ffn_down.weight", got["blk.0.ffn_down.weight"]
    assert gtype == k.upper() and shape == [64, 512]
    assert data == ggml_bytes(harness, k, tensors[name], tmp)
    gtype, shape, data, _ = got["blk.0.attn_q.weight"]
    assert gtype == fallback.upper() and shape == [32, 96]
    assert data == ggml_bytes(harness, fallback, tensors["blk.0.attn_q.weight"], tmp)
    assert got["blk.0.attn_norm.weight"][0] == "F32"


@pytest.mark.parametrize("qtype", ["q2_K", "q3_K", "iq4_nl", "iq4_xs"])
def test_dequantize_q2_q3_equals_gguf_py(scalpel, harness, tmp, qtype):
    """A GGUF holding ggml's Q2_K/Q3_K/IQ4_NL/IQ4_XS bytes, converted to safetensors by scalpel (dequantized
    to F32), equals gguf-py's dequantize bit for bit, and ggml's own to_float."""
    import gguf
    rng = np.random.default_rng(8)
    x, _ = odd_rows(rng)
    x = np.concatenate([x, rng.standard_normal((6, 512)).astype(np.float32)])
    raw = np.frombuffer(ggml_bytes(harness, qtype, x, tmp), np.uint8).reshape(x.shape[0], -1)
    gt = gguf.GGMLQuantizationType[qtype.upper()]
    path = tmp / "in.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("t.weight", raw, raw_shape=raw.shape, raw_dtype=gt)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    out = scalpel.convert(path, tmp / "out.safetensors")
    got = load_file(str(out))["t.weight"]
    want = gguf.quants.dequantize(raw, gt).astype(np.float32)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    # and ggml's own dequantizer agrees
    (tmp / "q.bin").write_bytes(raw.tobytes())
    subprocess.run([str(harness), "dequantize", qtype, str(x.size), str(tmp / "q.bin"), str(tmp / "d.f32")], check=True)
    assert np.array_equal(np.fromfile(tmp / "d.f32", np.float32).reshape(x.shape).view(np.uint32), got.view(np.uint32))
