"""PyTorch checkpoints (torch.save zip archives) read with the same values as torch.load.

The committed fixtures (fixtures/torch, made by make_torch_fixtures.py with torch.save) are compared with
expected.json (what torch.load gave when they were made): every dtype, shared storages, views with offsets
and strides (non-contiguous ones too), nested dicts, a sharded pytorch_model.bin.index.json folder. With
torch installed, fresh files written by torch.save in the test are compared with torch.load directly.
Values are compared as raw bytes after `scalpel convert X out.safetensors`.
"""
import json
import struct
from pathlib import Path

import pytest

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "torch"
EXPECTED = json.loads((FIX / "expected.json").read_text())


def read_raw_safetensors(path):
    """{name: (dtype, shape, bytes)} parsed by hand (works for BF16/F8 that numpy lacks)."""
    data = Path(path).read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    return {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
            for k, v in header.items()}


def check_against(got, expected):
    assert sorted(got) == sorted(expected)
    for name, e in expected.items():
        dtype, shape, raw = got[name]
        assert dtype == e["dtype"], name
        assert shape == e["shape"], name
        assert raw.hex() == e["hex"], name


@pytest.mark.parametrize("fixture", ["all_dtypes.pt", "views.pt", "nested.pt", "sharded"])
def test_fixture_reads_as_torch_load(scalpel, tmp, fixture):
    out = scalpel.convert(FIX / fixture, tmp / "out.safetensors")
    check_against(read_raw_safetensors(out), EXPECTED[fixture])


def test_index_file_itself_and_inspect(scalpel, tmp):
    out = scalpel.convert(FIX / "sharded" / "pytorch_model.bin.index.json", tmp / "out.safetensors")
    check_against(read_raw_safetensors(out), EXPECTED["sharded"])
    info = scalpel.inspect(FIX / "views.pt")
    assert info["format"] == "pytorch"
    names = [t["name"] for t in info["tensors"]]
    assert names == list(EXPECTED["views.pt"].keys()) or sorted(names) == sorted(EXPECTED["views.pt"])


def test_to_gguf_and_back(scalpel, tmp):
    """A torch file goes to GGUF like any checkpoint (names and values kept)."""
    g = scalpel.convert(FIX / "views.pt", tmp / "v.gguf", "--arch", "test")
    back = scalpel.convert(g, tmp / "v.safetensors")
    check_against(read_raw_safetensors(back), EXPECTED["views.pt"])


torch = None
try:
    import torch  # noqa: F811
except ImportError:
    pass

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed (fresh torch.save files are not tested)")


@needs_torch
def test_fresh_torch_save_every_dtype_and_views(scalpel, tmp):
    g = torch.Generator().manual_seed(1)
    base = torch.randn(10, 12, generator=g)
    sd = {
        "f32": base, "f16": base.half(), "bf16": base.bfloat16(), "f64": base.double(),
        "i8": (base * 10).to(torch.int8), "u8": (base.abs() * 10).to(torch.uint8), "i16": (base * 100).short(),
        "i32": (base * 1000).int(), "i64": (base * 1e6).long(), "bool": base > 0,
        "t": base.t(), "t_f16": base.half().t(), "slice": base[3:7, 1:11:2], "row": base[4], "col": base[:, 5],
        "offset": base.view(-1)[17:40], "same": base, "expand": torch.ones(3, 1).expand(3, 4),
    }
    path = tmp / "fresh.bin"
    torch.save(sd, path)
    loaded = torch.load(path, weights_only=True)
    got = read_raw_safetensors(scalpel.convert(path, tmp / "out.safetensors"))
    for name, t in loaded.items():
        dtype, shape, raw = got[name]
        assert shape == list(t.shape), name
        assert raw == t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes(), name


@needs_torch
def test_adapter_model_bin(scalpel, tmp):
    """A PEFT folder with only adapter_model.bin is read (inspect lists the LoRA modules)."""
    folder = tmp / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "base_model_name_or_path": "x"}))
    g = torch.Generator().manual_seed(2)
    sd = {"base_model.model.layers.0.q_proj.lora_A.weight": torch.randn(2, 8, generator=g),
          "base_model.model.layers.0.q_proj.lora_B.weight": torch.randn(8, 2, generator=g)}
    torch.save(sd, folder / "adapter_model.bin")
    info = scalpel.inspect(folder)
    assert sorted(t["name"] for t in info["tensors"]) == sorted(sd)
    got = read_raw_safetensors(scalpel.convert(folder / "adapter_model.bin", tmp / "a.safetensors"))
    for k, t in sd.items():
        assert got[k][2] == t.numpy().tobytes()
