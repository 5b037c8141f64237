"""The real all-MiniLM-L6-v2 checkpoint (SCALPEL_MODEL; `make model` fetches it)."""
import numpy as np
import pytest
from safetensors.numpy import load_file

from helpers import assert_stats_close, gguf_tensors, numpy_stats, read_safetensors_header


def test_inspect_totals(scalpel, model_path):
    report = scalpel.inspect(model_path)
    assert report["format"] == "safetensors"
    assert report["compressed"] is False
    assert report["tensor_count"] == 104
    assert report["parameter_count"] == 22_713_728
    assert report["file_bytes"] == model_path.stat().st_size
    # 103 F32 weights and the I64 position_ids buffer.
    assert report["by_dtype"] == {
        "F32": {"tensors": 103, "parameters": 22_713_216, "bytes": 4 * 22_713_216},
        "I64": {"tensors": 1, "parameters": 512, "bytes": 8 * 512},
    }
    assert report["data_bytes"] == 4 * 22_713_216 + 8 * 512
    assert report["metadata"] == {"format": "pt"}


def test_inspect_tensors_match_header(scalpel, model_path):
    header, _ = read_safetensors_header(model_path)
    listed = {t["name"]: t for t in scalpel.inspect(model_path, "--tensors")["tensors"]}
    assert sorted(listed) == sorted(k for k in header if k != "__metadata__")
    for name, t in listed.items():
        assert t["dtype"] == header[name]["dtype"]
        assert t["shape"] == header[name]["shape"]
        assert t["offset"] == header[name]["data_offsets"][0]
        assert t["bytes"] == header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
    assert listed["embeddings.word_embeddings.weight"]["shape"] == [30522, 384]


def test_group_by_layer_finds_six_layers(scalpel, model_path):
    groups = [g["name"] for g in scalpel.inspect(model_path, "--group-by", "layer")["groups"]]
    assert len([g for g in groups if g != "(other)"]) == 6


def test_stats_match_numpy(scalpel, model_path):
    tensors = load_file(str(model_path))
    names = ["embeddings.word_embeddings.weight", "encoder.layer.0.attention.self.query.weight",
             "encoder.layer.5.output.LayerNorm.bias"]
    for name in names:
        t = scalpel.inspect(model_path, "--stats", "--filter", name)["tensors"]
        assert [x["name"] for x in t] == [name]
        assert_stats_close(t[0], numpy_stats(tensors[name]), name)


def test_convert_to_f16(scalpel, model_path, tmp):
    original = load_file(str(model_path))
    f16 = scalpel.convert(model_path, tmp / "model-f16.safetensors", "--dtype", "f16")
    got = load_file(str(f16))
    assert sorted(got) == sorted(original)
    for name, array in original.items():
        expected = array.astype(np.float16) if array.dtype == np.float32 else array
        assert got[name].dtype == expected.dtype and got[name].tobytes() == expected.tobytes(), name
    report = scalpel.inspect(f16)
    assert report["by_dtype"]["F16"]["tensors"] == 103
    assert report["bits_per_parameter"] == pytest.approx(
        (2 * 22_713_216 + 8 * 512) * 8 / 22_713_728)


def test_convert_to_gguf(scalpel, model_path, tmp):
    original = load_file(str(model_path))
    out = scalpel.convert(model_path, tmp / "model.gguf", "--arch", "bert")
    tensors = gguf_tensors(out)
    assert len(tensors) == 104
    for name, array in original.items():
        qtype, shape, raw, _ = tensors[name]
        assert qtype == {"float32": "F32", "int64": "I64"}[array.dtype.name], name
        assert shape == list(array.shape), name
        assert raw == array.tobytes(), name
