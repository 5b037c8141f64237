"""Every file in fixtures/malformed/ is rejected cleanly by inspect and convert.

Contract: exit code 1; stderr is ONE line, starting `scalpel: error: `, naming the file (and the tensor, when
expected.json gives one) and containing (besides the path) the substring fixtures/malformed/expected.json gives
for it; stdout stays empty; convert leaves neither its output nor a temporary file (`.*.tmp-*`) behind, and no
decompressed temporary in TMPDIR.
"""
import json
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[1] / "fixtures" / "malformed"
EXPECTED = json.loads((CORPUS / "expected.json").read_text())


def test_corpus_is_complete(malformed_dir):
    on_disk = sorted(p.name for p in malformed_dir.iterdir()
                     if p.name not in ("expected.json", "make_malformed.py") and not p.name.startswith("__")
                     and "torch" not in p.name)  # torch_*: test_torch_malformed.py, expected_torch.json
    assert on_disk == sorted(EXPECTED)
    assert len(on_disk) >= 100


def check_error(proc, path, expected):
    assert proc.returncode == 1, f"exit code {proc.returncode}, stderr: {proc.stderr!r}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines: {proc.stderr!r}"
    line = lines[0]
    assert line.startswith("scalpel: error: "), line
    assert str(path) in line, f"the message does not name {path}: {line}"
    # The file names contain words like "duplicate" or "truncated": look for the substring elsewhere.
    message = line.replace(str(path), "<path>")
    assert expected["error"].lower() in message.lower(), f"expected {expected['error']!r} in: {line}"
    if "tensor" in expected:
        assert f"{path}: {expected['tensor']}: " in line, f"the message does not name tensor {expected['tensor']!r}: {line}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_rejects(scalpel, malformed_dir, name):
    path = malformed_dir / name
    proc = scalpel.run("inspect", path, "--json", check=False, timeout=60)
    check_error(proc, path, EXPECTED[name])
    assert proc.stdout == ""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_stats_rejects(scalpel, malformed_dir, name):
    """--stats maps and reads the data too (and fully decompresses .zst inputs)."""
    path = malformed_dir / name
    proc = scalpel.run("inspect", path, "--stats", check=False, timeout=60)
    check_error(proc, path, EXPECTED[name])


@pytest.mark.parametrize("out_name", ["out.safetensors", "out.gguf", "out.safetensors.zst"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_convert_rejects_and_leaves_nothing(scalpel, malformed_dir, tmp, name, out_name):
    path = malformed_dir / name
    out = tmp / out_name
    proc = scalpel.run("convert", path, out, check=False, timeout=60)
    check_error(proc, path, EXPECTED[name])
    assert not out.exists()
    assert list(tmp.iterdir()) == [], f"left behind: {[p.name for p in tmp.iterdir()]}"


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if n.endswith(".zst")))
def test_failed_decompression_leaves_no_temporary_file(scalpel, malformed_dir, tmp, name):
    """A .zst input is decompressed to a temporary file under TMPDIR; a failure must remove it."""
    scratch = tmp / "scratch"
    scratch.mkdir()
    path = malformed_dir / name
    for args in (["inspect", path, "--stats"], ["convert", path, tmp / "out.safetensors"]):
        proc = scalpel.run(*args, check=False, env={"TMPDIR": str(scratch)})
        check_error(proc, path, EXPECTED[name])
        assert list(scratch.iterdir()) == [], f"{args[0]} left {[p.name for p in scratch.iterdir()]}"


def test_corpus_unchanged_by_runs(malformed_dir):
    """Nothing above may write next to the inputs (no temporary files in the fixtures folder)."""
    strays = [p.name for p in malformed_dir.iterdir() if ".tmp-" in p.name]
    assert strays == []
