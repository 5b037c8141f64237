"""Every malformed PyTorch file (fixtures/malformed/torch_*, made by make_malformed_torch.py) is rejected
cleanly: exit 1, one `scalpel: error: FILE: ...` line containing the substring expected_torch.json gives,
nothing on stdout, and convert leaves no output or temporary file behind."""
import json
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "malformed"
EXPECTED = json.loads((CORPUS / "expected_torch.json").read_text())


def test_corpus_is_complete():
    on_disk = sorted(p.name for p in CORPUS.iterdir() if p.name.startswith("torch_"))
    assert on_disk == sorted(EXPECTED)
    assert len(on_disk) >= 10


def check_error(proc, path, expected):
    assert proc.returncode == 1, f"exit code {proc.returncode}, stderr: {proc.stderr!r}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"stderr has {len(lines)} lines: {proc.stderr!r}"
    assert lines[0].startswith(f"scalpel: error: {path}: "), lines[0]
    assert expected["error"] in lines[0].replace(str(path), "<path>"), f"expected {expected['error']!r} in: {lines[0]}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_rejects(scalpel, name):
    path = CORPUS / name
    proc = scalpel.run("inspect", path, "--json", check=False, timeout=60)
    check_error(proc, path, EXPECTED[name])
    assert proc.stdout == ""


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_convert_rejects_and_leaves_nothing(scalpel, tmp, name):
    path = CORPUS / name
    out = tmp / "out.safetensors"
    proc = scalpel.run("convert", path, out, check=False, timeout=60)
    check_error(proc, path, EXPECTED[name])
    assert list(tmp.iterdir()) == [], f"left behind: {[p.name for p in tmp.iterdir()]}"
