"""`scalpel inspect --json` on safetensors files written by the reference library (and BF16 by hand)."""
import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import (NUMPY_TO_ST, assert_stats_close, bf16_bits_to_f32, f32_to_bf16_bits, numpy_stats,
                     read_safetensors_header, write_safetensors_raw)

RNG = np.random.default_rng(20251123)


def all_numpy_dtypes():
    """One tensor per dtype, with awkward shapes: scalar, 1-D, 3-D, an empty tensor."""
    t = {
        "bool.mask": RNG.random((3, 5)) > 0.5,
        "u8.ids": RNG.integers(0, 255, (7,), dtype=np.uint8),
        "i8.q": RNG.integers(-128, 127, (2, 3, 4), dtype=np.int8),
        "i16.v": RNG.integers(-30000, 30000, (5, 2), dtype=np.int16),
        "u16.v": RNG.integers(0, 60000, (4,), dtype=np.uint16),
        "i32.v": RNG.integers(-2**31, 2**31 - 1, (3, 3), dtype=np.int32),
        "u32.v": RNG.integers(0, 2**32 - 1, (6,), dtype=np.uint32),
        "i64.position_ids": np.arange(12, dtype=np.int64).reshape(1, 12),
        "u64.v": RNG.integers(0, 2**63, (2, 2), dtype=np.uint64),
        "f16.w": RNG.standard_normal((8, 16)).astype(np.float16),
        "f32.w": RNG.standard_normal((16, 8)).astype(np.float32),
        "f64.w": RNG.standard_normal((3, 7)).astype(np.float64),
        "f32.scalar": np.array(3.5, dtype=np.float32),
        "f32.empty": np.zeros((0, 4), dtype=np.float32),
    }
    return t


@pytest.fixture
def numpy_file(tmp):
    tensors = all_numpy_dtypes()
    path = tmp / "all_dtypes.safetensors"
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path, tensors


def test_tensor_table_matches_reference_header(scalpel, numpy_file):
    path, tensors = numpy_file
    report = scalpel.inspect(path, "--tensors")
    header, _ = read_safetensors_header(path)
    listed = {t["name"]: t for t in report["tensors"]}
    assert sorted(listed) == sorted(tensors)
    for name, array in tensors.items():
        t = listed[name]
        assert t["dtype"] == NUMPY_TO_ST[array.dtype], name
        assert t["shape"] == list(array.shape), name
        assert t["bytes"] == array.nbytes, name
        assert t["offset"] == header[name]["data_offsets"][0], name


def test_totals(scalpel, numpy_file):
    path, tensors = numpy_file
    report = scalpel.inspect(path)
    assert report["format"] == "safetensors"
    assert report["compressed"] is False
    assert report["tensor_count"] == len(tensors)
    assert report["parameter_count"] == sum(a.size for a in tensors.values())
    assert report["data_bytes"] == sum(a.nbytes for a in tensors.values())
    assert report["file_bytes"] == path.stat().st_size
    assert report["bits_per_parameter"] == pytest.approx(8 * report["data_bytes"] / report["parameter_count"])
    assert report["metadata"] == {"format": "pt"}


def test_by_dtype(scalpel, numpy_file):
    path, tensors = numpy_file
    report = scalpel.inspect(path)
    expected = {}
    for a in tensors.values():
        e = expected.setdefault(NUMPY_TO_ST[a.dtype], {"tensors": 0, "parameters": 0, "bytes": 0})
        e["tensors"] += 1
        e["parameters"] += a.size
        e["bytes"] += a.nbytes
    assert report["by_dtype"] == expected


def test_group_by_dtype_agrees_with_by_dtype(scalpel, numpy_file):
    path, _ = numpy_file
    report = scalpel.inspect(path, "--group-by", "dtype")
    groups = {g["name"]: {k: g[k] for k in ("tensors", "parameters", "bytes")} for g in report["groups"]}
    assert groups == report["by_dtype"]


def test_group_by_layer_and_module(scalpel, tmp):
    tensors = {}
    for layer in range(3):
        for module in ("q_proj", "k_proj"):
            tensors[f"model.layers.{layer}.attn.{module}.weight"] = np.ones((4, 4), np.float32)
            tensors[f"model.layers.{layer}.attn.{module}.bias"] = np.ones((4,), np.float32)
    tensors["model.embed_tokens.weight"] = np.ones((10, 4), np.float32)
    path = tmp / "layers.safetensors"
    save_file(tensors, str(path))

    by_layer = {g["name"]: g for g in scalpel.inspect(path, "--group-by", "layer")["groups"]}
    layer_groups = [n for n in by_layer if n != "(other)"]
    assert len(layer_groups) == 3, by_layer.keys()
    for g in layer_groups:
        assert by_layer[g]["tensors"] == 4 and by_layer[g]["parameters"] == 40 and by_layer[g]["bytes"] == 160
    assert sum(g["parameters"] for g in by_layer.values()) == 3 * 40 + 40

    by_module = {g["name"]: g for g in scalpel.inspect(path, "--group-by", "module")["groups"]}
    assert by_module["q_proj"]["tensors"] == 6 and by_module["q_proj"]["parameters"] == 60
    assert by_module["k_proj"]["tensors"] == 6
    assert sum(g["tensors"] for g in by_module.values()) == len(tensors)


def test_filter_lists_matching_tensors_only(scalpel, numpy_file):
    path, tensors = numpy_file
    report = scalpel.inspect(path, "--filter", "f32.*")
    assert sorted(t["name"] for t in report["tensors"]) == sorted(n for n in tensors if n.startswith("f32."))
    # The totals still describe the whole file.
    assert report["tensor_count"] == len(tensors)


def test_bf16_written_by_hand(scalpel, tmp):
    values = RNG.standard_normal((4, 6)).astype(np.float32)
    bits = f32_to_bf16_bits(values)
    other = np.arange(5, dtype=np.float32)
    path = write_safetensors_raw(tmp / "bf16.safetensors", [
        ("a.bf16", "BF16", [4, 6], bits.tobytes()),
        ("b.f32", "F32", [5], other.tobytes()),
    ])
    report = scalpel.inspect(path, "--tensors", "--stats")
    t = {x["name"]: x for x in report["tensors"]}
    assert t["a.bf16"]["dtype"] == "BF16" and t["a.bf16"]["shape"] == [4, 6] and t["a.bf16"]["bytes"] == 48
    assert t["a.bf16"]["offset"] == 0 and t["b.f32"]["offset"] == 48
    assert report["by_dtype"]["BF16"] == {"tensors": 1, "parameters": 24, "bytes": 48}
    assert_stats_close(t["a.bf16"], numpy_stats(bf16_bits_to_f32(bits)), "a.bf16")


def test_stats_of_floats_match_numpy(scalpel, tmp):
    big = RNG.standard_normal((300, 700)).astype(np.float32) * 3 + 1  # several parallel chunks
    big[::7, ::11] = 0
    special = np.array([1.0, -2.0, np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 3.4e38, np.nan], dtype=np.float32)
    tensors = {
        "big": big,
        "special": special,
        "half": (RNG.standard_normal(1000) * 100).astype(np.float16),
        "double": RNG.standard_normal((10, 10)) * 1e3,
        "all_nan": np.full(5, np.nan, dtype=np.float32),
        "zeros": np.zeros((3, 3), np.float32),
    }
    path = tmp / "stats.safetensors"
    save_file(tensors, str(path))
    report = scalpel.inspect(path, "--tensors", "--stats")
    listed = {t["name"]: t for t in report["tensors"]}
    for name, array in tensors.items():
        assert_stats_close(listed[name], numpy_stats(array), name)


def test_stats_of_integers_match_numpy(scalpel, tmp):
    tensors = {
        "i8": RNG.integers(-128, 127, (100,), dtype=np.int8),
        "u8": RNG.integers(0, 255, (100,), dtype=np.uint8),
        "i32": RNG.integers(-1000, 1000, (10, 10), dtype=np.int32),
        "bool": RNG.random(50) > 0.3,
    }
    path = tmp / "ints.safetensors"
    save_file(tensors, str(path))
    listed = {t["name"]: t for t in scalpel.inspect(path, "--tensors", "--stats")["tensors"]}
    for name, array in tensors.items():
        assert_stats_close(listed[name], numpy_stats(array.astype(np.float64)), name)


def test_leading_whitespace_and_unsorted_header_accepted(scalpel, tmp):
    """The spec allows a header padded with spaces and any tensor order; scalpel must read it."""
    a = np.arange(6, dtype=np.float32)
    b = np.arange(4, dtype=np.int64)
    path = write_safetensors_raw(tmp / "unsorted.safetensors", [
        ("z", "F32", [2, 3], a.tobytes()), ("a", "I64", [4], b.tobytes())], pad_to=64)
    report = scalpel.inspect(path, "--tensors")
    listed = {t["name"]: t for t in report["tensors"]}
    assert listed["z"]["shape"] == [2, 3] and listed["z"]["offset"] == 0
    assert listed["a"]["dtype"] == "I64" and listed["a"]["offset"] == 24


def test_human_output_mentions_every_dtype(scalpel, numpy_file):
    path, tensors = numpy_file
    out = scalpel.run("inspect", path).stdout
    for dtype in {NUMPY_TO_ST[a.dtype] for a in tensors.values()}:
        assert dtype in out
    out = scalpel.run("inspect", path, "--tensors").stdout
    for name in tensors:
        assert name in out
