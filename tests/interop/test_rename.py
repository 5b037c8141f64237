"""scalpel rename: a JSON map and a regex rename tensors (data unchanged), collisions are refused, and
--dry-run prints the mapping without writing."""
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file


@pytest.fixture
def model(tmp):
    rng = np.random.default_rng(3)
    t = {f"model.layers.{i}.{p}.weight": rng.standard_normal((8, 8)).astype(np.float32)
         for i in range(3) for p in ("q_proj", "k_proj")}
    t["model.norm.weight"] = np.ones(8, np.float32)
    save_file(t, tmp / "m.safetensors", metadata={"format": "pt"})
    return tmp / "m.safetensors", t


def test_regex_renames_and_keeps_data(scalpel, tmp, model):
    path, t = model
    out = tmp / "out.safetensors"
    p = scalpel.run("rename", path, out, "--regex", r"^model\.layers\.([0-9]+)\.=blocks.$1.", "--json")
    rep = json.loads(p.stdout)
    assert rep["renamed"] == 6
    got = load_file(out)
    for name, v in t.items():
        new = name.replace("model.layers.", "blocks.") if "layers" in name else name
        assert rep["mapping"].get(name, name) == new
        np.testing.assert_array_equal(got[new], v)
    assert len(got) == len(t)


def test_map_file(scalpel, tmp, model):
    path, t = model
    (tmp / "map.json").write_text(json.dumps({"model.norm.weight": "norm.weight"}))
    out = tmp / "out.gguf"
    scalpel.run("rename", path, out, "--map", tmp / "map.json")
    import gguf
    names = {x.name for x in gguf.GGUFReader(out).tensors}
    assert "norm.weight" in names and "model.norm.weight" not in names and len(names) == len(t)


@pytest.mark.parametrize("rule", [["--regex", r"\.(q|k)_proj=.proj"],
                                  ["--regex", r"^model\.layers\.0\.k_proj=model.layers.0.q_proj"]])
def test_collisions_refused(scalpel, tmp, model, rule):
    path, _ = model
    out = tmp / "out.safetensors"
    p = scalpel.run("rename", path, out, *rule, check=False)
    assert p.returncode == 1 and "scalpel: error:" in p.stderr and "name collision" in p.stderr
    assert not out.exists()


def test_map_naming_missing_tensor_refused(scalpel, tmp, model):
    path, _ = model
    (tmp / "map.json").write_text(json.dumps({"nope": "x"}))
    p = scalpel.run("rename", path, tmp / "o.safetensors", "--map", tmp / "map.json", check=False)
    assert p.returncode == 1 and "nope" in p.stderr


def test_dry_run_writes_nothing(scalpel, tmp, model):
    path, _ = model
    out = tmp / "out.safetensors"
    p = scalpel.run("rename", path, out, "--regex", "k_proj=key", "--dry-run")
    assert not out.exists() and list(tmp.iterdir()) == [path]
    assert "would rename 3 of 7 tensors" in p.stdout
    assert "model.layers.1.k_proj.weight" in p.stdout and "model.layers.1.key.weight" in p.stdout
