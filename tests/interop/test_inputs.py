"""How inputs are recognised (sharded index, PEFT adapter folder) and how missing inputs fail."""
import json

import numpy as np
import pytest
from safetensors.numpy import save_file

RNG = np.random.default_rng(99)


def check_one_line_error(proc, path):
    assert proc.returncode == 1, f"exit code {proc.returncode}, stderr: {proc.stderr!r}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scalpel: error: "), proc.stderr
    assert str(path) in lines[0], lines[0]


def test_inspect_index_json_and_folder_agree(scalpel, tmp):
    tensors = {f"layers.{i}.weight": RNG.standard_normal((50, 50)).astype(np.float32) for i in range(4)}
    src = tmp / "model.safetensors"
    save_file(tensors, str(src))
    scalpel.convert(src, tmp / "shards", "--shard-size", "20KB")
    by_folder = scalpel.inspect(tmp / "shards", "--tensors")
    by_index = scalpel.inspect(tmp / "shards" / "model.safetensors.index.json", "--tensors")
    for report in (by_folder, by_index):
        assert report["format"] == "safetensors-sharded"
        assert report["tensor_count"] == 4
        assert report["parameter_count"] == 4 * 2500
        assert report["data_bytes"] == 4 * 10_000
        assert sorted(t["name"] for t in report["tensors"]) == sorted(tensors)
    assert by_folder["tensors"] == by_index["tensors"]


def test_inspect_peft_adapter_folder(scalpel, tmp):
    folder = tmp / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": "tiny-base", "task_type": "CAUSAL_LM"}))
    tensors = {}
    for layer in range(2):
        for module in ("q_proj", "v_proj"):
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = RNG.standard_normal((4, 32)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = np.zeros((32, 4), np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"), metadata={"format": "pt"})
    report = scalpel.inspect(folder, "--tensors")
    assert report["format"] == "peft-adapter"
    assert report["tensor_count"] == 8
    assert report["parameter_count"] == 8 * 128
    assert {t["name"]: t["shape"] for t in report["tensors"]} == {n: list(a.shape) for n, a in tensors.items()}


@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_missing_input(scalpel, tmp, command):
    path = tmp / "does-not-exist.safetensors"
    args = [command, path] + ([tmp / "out.safetensors"] if command == "convert" else [])
    proc = scalpel.run(*args, check=False)
    check_one_line_error(proc, path)
    assert list(tmp.iterdir()) == []


def test_output_folder_missing(scalpel, tmp):
    src = tmp / "in.safetensors"
    save_file({"w": np.ones(3, np.float32)}, str(src))
    out = tmp / "no" / "such" / "dir" / "out.safetensors"
    proc = scalpel.run("convert", src, out, check=False)
    check_one_line_error(proc, out)
    assert not (tmp / "no").exists() or not out.exists()
