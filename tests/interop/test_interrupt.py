"""Interrupted runs, inputs that change under a run, and full disks (issue 13, items 7 and 8).

- SIGINT/SIGTERM of `convert` and `quantize` at several points: exit 130/143 (or 0 when the run had
  finished), no temporary left, the destination absent, complete, or the old file unchanged.
- SIGKILL at the same points: the destination absent, complete or unchanged; the temporaries left by
  the killed process are removed by the next run that writes to the same folder.
- SIGBUS: an input truncated while mapped gives one error line naming the input, and no debris.
- A full filesystem (a small tmpfs; skipped with the reason when it cannot be mounted): one line naming
  the user's path, nothing left.
"""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from helpers import read_safetensors_raw

TENSORS = 8
SHAPE = (1024, 8192)  # 8 x 32 MiB of f32: 256 MiB


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    path = tmp_path_factory.mktemp("large") / "large.safetensors"
    rng = np.random.default_rng(0)
    save_file({f"t{i}": rng.standard_normal(SHAPE, dtype=np.float32) for i in range(TENSORS)}, str(path))
    return path


@pytest.fixture(scope="module")
def references(large, scalpel, tmp_path_factory):
    """The complete outputs of each command, for comparing what an interrupted run left."""
    d = tmp_path_factory.mktemp("refs")
    out = {}
    for key, args in COMMANDS.items():
        dst = d / args[1]
        scalpel.run(*command_line(args, large, dst))
        out[key] = dst.read_bytes()
    return out


COMMANDS = {
    "convert-f16": (["convert", "{src}", "{dst}", "--dtype", "f16", "--force"], "out.safetensors"),
    "quantize-q8_0": (["quantize", "{src}", "{dst}", "--type", "q8_0", "--force"], "out.gguf"),
}


def command_line(spec, src, dst):
    args, _ = spec
    return [a.format(src=src, dst=dst) for a in args]


def temporaries(folder):
    return sorted(p.name for p in Path(folder).iterdir() if ".tmp-" in p.name)


def start(scalpel, args):
    return subprocess.Popen([str(scalpel.binary), *map(str, args)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_temporary(folder, proc, timeout=30):
    """Waits until the run has created its temporary output (the write has begun)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if temporaries(folder):
            return True
        time.sleep(0.002)
    return False


OLD = b"the previous output, which an interrupted run must leave alone\n"


@pytest.mark.parametrize("key", sorted(COMMANDS))
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("point", ["before-write", "write+0ms", "write+150ms", "write+600ms"])
@pytest.mark.parametrize("old", [False, True])
def test_sigint_sigterm_leave_no_temporary(scalpel, large, references, tmp, key, sig, code, point, old):
    dst = tmp / COMMANDS[key][1]
    if old:
        dst.write_bytes(OLD)
    proc = start(scalpel, command_line(COMMANDS[key], large, dst))
    if point == "before-write":
        time.sleep(0.01)
    else:
        wait_for_temporary(tmp, proc)
        time.sleep(int(point.split("+")[1][:-2]) / 1000)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    # A signal that arrives before the handlers are installed (process start-up, before anything is
    # written) kills the process the default way: nothing exists yet to clean up.
    allowed = (code, 0, -sig) if point == "before-write" else (code, 0)
    assert proc.returncode in allowed, f"exit {proc.returncode}: {err}"
    if proc.returncode == code:
        assert err.count("\n") <= 1, err
    assert temporaries(tmp) == [], f"left behind after {sig.name}: {temporaries(tmp)}"
    if dst.exists():
        assert dst.read_bytes() in (references[key], OLD) if old else dst.read_bytes() == references[key]
    else:
        assert not old, "the old output vanished"


@pytest.mark.parametrize("key", sorted(COMMANDS))
@pytest.mark.parametrize("point", ["write+0ms", "write+100ms", "write+400ms"])
def test_sigkill_leaves_old_or_complete_and_next_run_sweeps(scalpel, large, references, tmp, key, point):
    dst = tmp / COMMANDS[key][1]
    dst.write_bytes(OLD)
    proc = start(scalpel, command_line(COMMANDS[key], large, dst))
    wait_for_temporary(tmp, proc)
    time.sleep(int(point.split("+")[1][:-2]) / 1000)
    proc.kill()
    proc.communicate(timeout=60)
    assert dst.read_bytes() in (OLD, references[key])
    left = temporaries(tmp)
    # The next run writing into the same folder removes what the killed run left (its PID is gone).
    small = tmp / "small.safetensors"
    save_file({"w": np.ones(4, np.float32)}, str(small))
    scalpel.run("convert", small, tmp / "next.safetensors")
    assert temporaries(tmp) == [], f"{left} were not swept: {temporaries(tmp)}"


def test_stale_temporary_of_a_live_process_is_kept(scalpel, tmp):
    """Only temporaries whose process is gone are swept (a concurrent run's are not)."""
    live = tmp / f".x.safetensors.tmp-{os.getpid()}-abcdef"
    live.write_bytes(b"in progress")
    dead = tmp / ".y.safetensors.tmp-999999999-abcdef"  # above pid_max: no such process
    dead.write_bytes(b"stale")
    other = tmp / ".z.tmp-notapid"
    other.write_bytes(b"not ours")
    small = tmp / "small.safetensors"
    save_file({"w": np.ones(4, np.float32)}, str(small))
    scalpel.run("convert", small, tmp / "next.safetensors")
    assert live.exists() and other.exists() and not dead.exists()


def test_sigint_of_a_sharded_output_removes_the_temporary_folder(scalpel, large, tmp):
    dst = tmp / "sharded"
    proc = start(scalpel, ["convert", large, dst, "--shard-size", "40MB", "--dtype", "f16"])
    wait_for_temporary(tmp, proc)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    assert proc.returncode in (130, 0)
    assert temporaries(tmp) == []
    if proc.returncode == 130:
        assert not dst.exists()


def test_sigint_while_decompressing_leaves_nothing_in_tmpdir(scalpel, large, tmp):
    zst = tmp / "large.safetensors.zst"
    scalpel.run("convert", large, zst, "--zstd-level", "1")
    scratch = tmp / "scratch"
    scratch.mkdir()
    proc = subprocess.Popen([str(scalpel.binary), "convert", zst, tmp / "o.safetensors", "--dtype", "f16"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "TMPDIR": str(scratch)})
    end = time.monotonic() + 30  # the input mapped: the handlers are installed, decompression begins
    while not mapped(proc.pid, zst) and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.001)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode in (143, 0)
    assert list(scratch.iterdir()) == []
    assert temporaries(tmp) == []


# --------------------------------------------------------------------------------------------------
# SIGBUS: the input truncated by another process while it is mapped.
# --------------------------------------------------------------------------------------------------

def mapped(pid, path):
    try:
        return str(path) in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.parametrize("args", [["convert", "{src}", "{dst}", "--dtype", "f16"], ["convert", "{src}", "{dst}"],
                                  ["inspect", "{src}", "--stats"]], ids=["convert-f16", "convert-copy", "inspect-stats"])
def test_truncated_while_mapped_is_one_line_naming_the_input(scalpel, large, tmp, args):
    for attempt in range(5):
        victim = tmp / "victim.safetensors"
        subprocess.run(["cp", large, victim], check=True)
        dst = tmp / "out.safetensors"
        proc = start(scalpel, [a.format(src=victim, dst=dst) for a in args])
        end = time.monotonic() + 30
        while not mapped(proc.pid, victim) and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.001)
        os.truncate(victim, 4096)
        out, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            continue  # finished before the truncation: try again
        assert proc.returncode == 1, f"exit {proc.returncode}: {err[-2000:]}"
        lines = err.splitlines()
        assert len(lines) == 1, err[-2000:]
        assert lines[0].startswith(f"scalpel: error: {victim}: "), lines[0]
        assert "truncated" in lines[0] or "past the end" in lines[0] or "the file has" in lines[0], lines[0]
        assert not dst.exists()
        assert temporaries(tmp) == []
        return
    pytest.skip("the run always finished before the input could be truncated")


# --------------------------------------------------------------------------------------------------
# Full filesystem.
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp):
    mnt = tmp / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"full-disk test skipped: cannot mount a tmpfs ({r.stderr.strip()})")
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


@pytest.mark.parametrize("out_name", ["out.safetensors", "out.gguf", "out.safetensors.zst", "shards"])
def test_full_filesystem_is_one_line_naming_the_output(scalpel, small_tmpfs, tmp, out_name):
    src = tmp / "src.safetensors"
    rng = np.random.default_rng(1)
    save_file({f"t{i}": rng.standard_normal((1024, 1024), dtype=np.float32) for i in range(4)}, str(src))  # 4 MiB each
    dst = small_tmpfs / out_name
    extra = ["--shard-size", "3MB"] if out_name == "shards" else []
    proc = scalpel.run("convert", src, dst, *extra, check=False)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"scalpel: error: {dst}"), lines[0]
    assert "No space left on device" in lines[0]
    assert ".tmp-" not in lines[0], "the message names an internal temporary path"
    assert list(small_tmpfs.iterdir()) == []


def test_full_tmpdir_while_decompressing_names_the_input(scalpel, small_tmpfs, tmp):
    src = tmp / "src.safetensors"
    rng = np.random.default_rng(2)
    save_file({"t": rng.standard_normal((4096, 1024), dtype=np.float32)}, str(src))  # 16 MiB
    zst = tmp / "src.safetensors.zst"
    scalpel.run("convert", src, zst)
    proc = scalpel.run("convert", zst, tmp / "o.safetensors", check=False, env={"TMPDIR": str(small_tmpfs)})
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"scalpel: error: {zst}: "), lines[0]
    assert "No space left on device" in lines[0]
    assert list(small_tmpfs.iterdir()) == []
    assert not (tmp / "o.safetensors").exists()
