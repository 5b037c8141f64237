"""`scalpel inspect --json` on GGUF files written by gguf-py's GGUFWriter."""
import gguf
import numpy as np
import pytest

from helpers import assert_stats_close, gguf_metadata, gguf_tensors, numpy_stats

Q = gguf.GGMLQuantizationType
RNG = np.random.default_rng(7)


def write_gguf(path, tensors, kv=None, arch="llama"):
    """tensors: {name: (numpy float32 array, ggml type)}; quantized types go through gguf.quants.quantize.
    kv: {key: (writer method name, value)}."""
    w = gguf.GGUFWriter(str(path), arch=arch)
    for key, (method, value) in (kv or {}).items():
        if method == "add_array":
            w.add_array(key, value)
        else:
            getattr(w, method)(key, value)
    for name, (array, qtype) in tensors.items():
        if qtype == Q.F32:
            w.add_tensor(name, array.astype(np.float32))
        elif qtype == Q.F16:
            w.add_tensor(name, array.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(array.astype(np.float32), qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


KV = {
    "general.name": ("add_string", "tiny test model"),
    "llama.context_length": ("add_uint32", 2048),
    "llama.rope.freq_base": ("add_float32", 10000.0),
    "llama.attention.layer_norm_rms_epsilon": ("add_float32", 1e-5),
    "test.int8": ("add_int8", -5),
    "test.uint8": ("add_uint8", 250),
    "test.int16": ("add_int16", -300),
    "test.uint16": ("add_uint16", 60000),
    "test.int32": ("add_int32", -70000),
    "test.int64": ("add_int64", -(2**40)),
    "test.uint64": ("add_uint64", 2**50),
    "test.float64": ("add_float64", 0.1),
    "test.bool": ("add_bool", True),
    "test.strings": ("add_array", ["a", "bé", ""]),
    "test.ints": ("add_array", [1, 2, 3]),
    "test.floats": ("add_array", [0.5, -1.25]),
    "general.file_type": ("add_uint32", 7),
    "general.quantization_version": ("add_uint32", 2),
}


def model_tensors():
    return {
        "token_embd.weight": (RNG.standard_normal((10, 64)), Q.F16),
        "blk.0.attn_q.weight": (RNG.standard_normal((64, 64)), Q.Q8_0),
        "blk.0.attn_k.weight": (RNG.standard_normal((32, 64)), Q.Q4_0),
        "blk.0.attn_norm.weight": (RNG.standard_normal(64), Q.F32),
        "blk.1.ffn_up.weight": (RNG.standard_normal((3, 128, 64)), Q.Q8_0),
        "output_norm.weight": (RNG.standard_normal(64), Q.F32),
    }


@pytest.fixture
def gguf_file(tmp):
    tensors = model_tensors()
    return write_gguf(tmp / "tiny.gguf", tensors, KV), tensors


def test_tensor_table_matches_gguf_reader(scalpel, gguf_file):
    path, tensors = gguf_file
    report = scalpel.inspect(path, "--tensors")
    assert report["format"] == "gguf"
    reference = gguf_tensors(path)
    listed = {t["name"]: t for t in report["tensors"]}
    assert list(listed) == list(reference)  # file order
    for name, (qtype, shape, raw, offset) in reference.items():
        t = listed[name]
        assert t["dtype"] == qtype, name
        assert t["shape"] == shape == list(tensors[name][0].shape), name  # row-major, numpy order
        assert t["bytes"] == len(raw), name
        assert t["offset"] == offset, name


def test_totals_and_by_dtype(scalpel, gguf_file):
    path, tensors = gguf_file
    report = scalpel.inspect(path)
    reference = gguf_tensors(path)
    assert report["tensor_count"] == len(tensors)
    assert report["parameter_count"] == sum(a.size for a, _ in tensors.values())
    assert report["data_bytes"] == sum(len(r[2]) for r in reference.values())
    assert report["file_bytes"] == path.stat().st_size
    expected = {}
    for name, (qtype, _, raw, _) in reference.items():
        e = expected.setdefault(qtype, {"tensors": 0, "parameters": 0, "bytes": 0})
        e["tensors"] += 1
        e["parameters"] += tensors[name][0].size
        e["bytes"] += len(raw)
    assert report["by_dtype"] == expected
    assert report["bits_per_parameter"] == pytest.approx(8 * report["data_bytes"] / report["parameter_count"])


def test_metadata_matches_gguf_reader(scalpel, gguf_file):
    path, _ = gguf_file
    reported = scalpel.inspect(path, "--metadata")["metadata"]
    reference = gguf_metadata(path)
    assert list(reported) == list(reference)
    for key, value in reference.items():
        got = reported[key]
        if isinstance(value, float):
            assert got == pytest.approx(value, rel=1e-7), key
        elif isinstance(value, list) and value and isinstance(value[0], float):
            assert got == pytest.approx(value, rel=1e-7), key
        else:
            assert got == value, key
    assert reported["general.architecture"] == "llama"
    assert reported["test.bool"] is True
    assert reported["test.uint64"] == 2**50


def test_stats_match_dequantized_values(scalpel, gguf_file):
    path, _ = gguf_file
    reader = gguf.GGUFReader(str(path))
    listed = {t["name"]: t for t in scalpel.inspect(path, "--tensors", "--stats")["tensors"]}
    for t in reader.tensors:
        values = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
        assert_stats_close(listed[t.name], numpy_stats(values), t.name)


def test_group_by_layer(scalpel, gguf_file):
    path, tensors = gguf_file
    groups = {g["name"]: g for g in scalpel.inspect(path, "--group-by", "layer")["groups"]}
    layer0 = [n for n in tensors if n.startswith("blk.0.")]
    layer_groups = sorted((g for n, g in groups.items() if n != "(other)"), key=lambda g: g["name"])
    assert len(layer_groups) == 2
    assert sorted(g["tensors"] for g in layer_groups) == [1, len(layer0)]
    assert sum(g["parameters"] for g in groups.values()) == sum(a.size for a, _ in tensors.values())


def test_custom_alignment(scalpel, tmp):
    w = gguf.GGUFWriter(str(tmp / "aligned.gguf"), arch="llama")
    w.data_alignment = 64
    w.add_uint32("general.alignment", 64)
    a = RNG.standard_normal(5).astype(np.float32)
    b = RNG.standard_normal((2, 3)).astype(np.float32)
    w.add_tensor("a", a)
    w.add_tensor("b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    listed = {t["name"]: t for t in scalpel.inspect(tmp / "aligned.gguf", "--tensors")["tensors"]}
    assert listed["a"]["offset"] == 0 and listed["b"]["offset"] == 64
    assert listed["b"]["shape"] == [2, 3] and listed["b"]["bytes"] == 24


def test_human_output(scalpel, gguf_file):
    path, tensors = gguf_file
    out = scalpel.run("inspect", path, "--tensors", "--metadata").stdout
    for name in tensors:
        assert name in out
    for qtype in ("Q8_0", "Q4_0", "F16", "F32"):
        assert qtype in out
    assert "general.architecture" in out and "llama" in out
