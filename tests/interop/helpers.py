"""Plain helpers shared by the interop tests (file builders and oracles; no pytest fixtures here)."""
import json
import struct
from pathlib import Path

import numpy as np

# numpy dtype -> safetensors dtype name, for every dtype safetensors.numpy can save.
NUMPY_TO_ST = {
    np.dtype(np.bool_): "BOOL",
    np.dtype(np.uint8): "U8",
    np.dtype(np.int8): "I8",
    np.dtype(np.int16): "I16",
    np.dtype(np.uint16): "U16",
    np.dtype(np.int32): "I32",
    np.dtype(np.uint32): "U32",
    np.dtype(np.int64): "I64",
    np.dtype(np.uint64): "U64",
    np.dtype(np.float16): "F16",
    np.dtype(np.float32): "F32",
    np.dtype(np.float64): "F64",
}


def write_safetensors_raw(path, tensors, metadata=None, pad_to=8):
    """Writes a safetensors file by hand (for dtypes numpy lacks, e.g. BF16).

    tensors: list of (name, dtype name, shape, raw little-endian bytes), written in the given order.
    The header is compact JSON padded with spaces so the data starts at a multiple of `pad_to`.
    """
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((pad_to - (8 + len(text)) % pad_to) % pad_to)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, _, _, raw in tensors:
            f.write(raw)
    return Path(path)


def read_safetensors_header(path):
    """The parsed JSON header and the data start of a safetensors file."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def f32_to_bf16_bits(x):
    """Reference f32 -> bf16 (ggml_compute_fp32_to_bf16: NaN made quiet, round to nearest even)."""
    import gguf
    return gguf.quants.quantize(np.ascontiguousarray(x, dtype=np.float32), gguf.GGMLQuantizationType.BF16).view(np.uint16)


def bf16_bits_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def numpy_stats(values):
    """The statistics scalpel reports, computed by numpy in float64 over the float32 values:
    min/max/mean/std (population)/mean_abs over finite values; zero_fraction over all; NaN and Inf counts."""
    v = np.asarray(values, dtype=np.float32).astype(np.float64).ravel()
    finite = v[np.isfinite(v)]
    out = {
        "nan_count": int(np.isnan(v).sum()),
        "inf_count": int(np.isinf(v).sum()),
        "zero_fraction": float((v == 0).sum() / v.size) if v.size else 0.0,
    }
    if finite.size:
        out.update(min=float(finite.min()), max=float(finite.max()), mean=float(finite.mean()),
                   std=float(finite.std()), mean_abs=float(np.abs(finite).mean()))
    else:
        out.update(min=0.0, max=0.0, mean=0.0, std=0.0, mean_abs=0.0)
    return out


def assert_stats_close(reported, expected, name, rel=1e-5):
    """Counts exact; min/max to float32 rounding; mean/std/mean_abs within `rel` of the scale of the data."""
    for key in ("nan_count", "inf_count"):
        assert reported[key] == expected[key], f"{name}: {key} {reported[key]} != numpy {expected[key]}"
    assert abs(reported["zero_fraction"] - expected["zero_fraction"]) <= 1e-12, \
        f"{name}: zero_fraction {reported['zero_fraction']} != numpy {expected['zero_fraction']}"
    scale = max(abs(expected["min"]), abs(expected["max"]), 1e-30)
    for key in ("min", "max"):
        assert abs(reported[key] - expected[key]) <= 1e-7 * scale, \
            f"{name}: {key} {reported[key]} != numpy {expected[key]}"
    for key in ("mean", "std", "mean_abs"):
        assert abs(reported[key] - expected[key]) <= rel * scale, \
            f"{name}: {key} {reported[key]} != numpy {expected[key]}"


def gguf_tensors(path):
    """{name: (ggml type name, numpy-order shape, raw bytes, offset in the data section)} read by gguf-py."""
    import gguf
    reader = gguf.GGUFReader(str(path))
    out = {}
    for t in reader.tensors:
        shape = [int(d) for d in reversed(t.shape.tolist())]
        out[t.name] = (gguf.GGMLQuantizationType(int(t.tensor_type)).name, shape,
                       bytes(np.asarray(t.data).tobytes()), int(t.data_offset) - int(reader.data_offset))
    return out


def gguf_metadata(path):
    """The key/values of a GGUF file as plain Python values (strings, numbers, lists), in file order,
    without gguf-py's pseudo-keys (GGUF.*)."""
    import gguf
    reader = gguf.GGUFReader(str(path))
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        out[key] = field.contents()
    return out


def read_safetensors_raw(path):
    """{name: (dtype name, shape, raw bytes)} of a safetensors file, for any dtype (numpy lacks BF16)."""
    header, start = read_safetensors_header(path)
    data = Path(path).read_bytes()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        out[name] = (entry["dtype"], entry["shape"], data[start + begin:start + end])
    return out


def random_f32_bit_patterns(n, rng, quiet_nans_only=True):
    """n float32 values drawn uniformly over all 2**32 bit patterns (every exponent, subnormals, Inf,
    NaNs with payloads). With quiet_nans_only, signaling NaNs get their quiet bit set."""
    bits = rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    if quiet_nans_only:
        nan = (bits & 0x7F800000) == 0x7F800000
        nan &= (bits & 0x007FFFFF) != 0
        bits[nan] |= 0x00400000
    return bits.view(np.float32)
