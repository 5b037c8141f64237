"""Fixtures for the interop tests: the scalpel binary, a CLI runner, the real model, the malformed corpus.

Environment:
  SCALPEL_BIN    the binary to test (default: .build/release/scalpel under the repo root)
  SCALPEL_MODEL  the real all-MiniLM-L6-v2 model.safetensors (tests that need it skip when unset)
"""
import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


class Scalpel:
    """Runs the scalpel binary and parses what it prints."""

    def __init__(self, binary: Path):
        self.binary = binary

    def run(self, *args, check=True, timeout=600, env=None):
        """Runs `scalpel ARGS...` (no stdin) and returns the CompletedProcess (text mode).
        With check, a non-zero exit fails the test showing stderr. `env` adds environment variables."""
        proc = subprocess.run([str(self.binary), *map(str, args)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout,
                              env=None if env is None else {**os.environ, **env})
        if check and proc.returncode != 0:
            pytest.fail(f"scalpel {' '.join(map(str, args))} exited {proc.returncode}\n"
                        f"stderr: {proc.stderr}\nstdout: {proc.stdout[-2000:]}", pytrace=False)
        return proc

    def inspect(self, path, *flags):
        """`scalpel inspect PATH --json FLAGS...` parsed as JSON."""
        proc = self.run("inspect", path, "--json", *flags)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            pytest.fail(f"inspect --json printed invalid JSON ({e}):\n{proc.stdout[:2000]}", pytrace=False)

    def convert(self, src, dst, *flags):
        """`scalpel convert SRC DST FLAGS...`; returns DST as a Path."""
        self.run("convert", src, dst, *flags)
        return Path(dst)


@pytest.fixture(scope="session")
def scalpel_bin() -> Path:
    path = Path(os.environ.get("SCALPEL_BIN", REPO / ".build" / "release" / "scalpel"))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"scalpel binary not found at {path}: run `make build` or set SCALPEL_BIN", pytrace=False)
    return path


@pytest.fixture(scope="session")
def scalpel(scalpel_bin) -> Scalpel:
    return Scalpel(scalpel_bin)


@pytest.fixture
def tmp(tmp_path) -> Path:
    """A fresh, empty folder for one test's files."""
    return tmp_path


@pytest.fixture(scope="session")
def model_path() -> Path:
    value = os.environ.get("SCALPEL_MODEL")
    if not value:
        pytest.skip("SCALPEL_MODEL is not set (make model; make test sets it)")
    path = Path(value)
    if not path.is_file():
        pytest.fail(f"SCALPEL_MODEL={value} does not exist: run `make model`", pytrace=False)
    return path


@pytest.fixture(scope="session")
def malformed_dir() -> Path:
    return REPO / "fixtures" / "malformed"
