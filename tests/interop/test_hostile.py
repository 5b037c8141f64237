"""Regression tests for issue 13's findings: hostile files, inputs that must never be harmed, hangs, crashes.

Each test names the item of the issue it covers. Interruption (SIGINT/SIGTERM/SIGKILL), SIGBUS and
full-disk tests are in test_interrupt.py.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import gguf
import numpy as np
import pytest
from safetensors.numpy import save_file

from helpers import read_safetensors_raw, write_safetensors_raw

REPO = Path(__file__).resolve().parents[2]
PEFT = REPO / "fixtures" / "peft"
LLAMA = PEFT / "llama_base" / "model.safetensors"
PLAIN_A = PEFT / "adapters" / "plain_a"


def one_error_line(proc, *must_contain):
    """exit 1, exactly one stderr line `scalpel: error: ...` holding every string of must_contain."""
    assert proc.returncode == 1, f"exit {proc.returncode}: {proc.stderr!r}"
    lines = [l for l in proc.stderr.splitlines() if not l.startswith("scalpel: warning: ")]
    assert len(lines) == 1, f"stderr has {len(lines)} lines: {proc.stderr!r}"
    assert lines[0].startswith("scalpel: error: "), lines[0]
    for s in must_contain:
        assert str(s) in lines[0], f"{s!r} not in {lines[0]!r}"
    return lines[0]


def no_temporaries(folder):
    return [p.name for p in Path(folder).rglob("*") if ".tmp-" in p.name]


# --------------------------------------------------------------------------------------------------
# 1. An output never replaces an input, whatever path leads to it.
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def shards(tmp):
    d = tmp / "shards"
    d.mkdir()
    names = {}
    for k in range(3):
        name = f"model-{k + 1:05d}-of-00003.safetensors"
        save_file({f"w{k}": np.full((8, 32), k, np.float32)}, str(d / name))
        names[f"w{k}"] = name
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": 3 * 1024}, "weight_map": names}))
    return d


@pytest.mark.parametrize("command", [["convert"], ["quantize", "--type", "nf4"]])
def test_1_output_naming_a_shard_of_the_input_is_refused(scalpel, shards, command):
    index = shards / "model.safetensors.index.json"
    shard = shards / "model-00001-of-00003.safetensors"
    before = shard.read_bytes()
    args = [command[0], index, shard, *command[1:], "--force"]  # even when replacing is allowed
    proc = scalpel.run(*args, check=False)
    one_error_line(proc, "would overwrite the input", "model-00001-of-00003.safetensors")
    assert shard.read_bytes() == before
    assert no_temporaries(shards) == []


def test_1_output_that_is_a_symlink_or_hard_link_to_the_input_is_refused(scalpel, tmp):
    src = tmp / "in.safetensors"
    save_file({"w": np.ones((4, 4), np.float32)}, str(src))
    before = src.read_bytes()
    (tmp / "link.safetensors").symlink_to(src)
    os.link(src, tmp / "hard.safetensors")
    for out in ("link.safetensors", "hard.safetensors"):
        proc = scalpel.run("convert", src, tmp / out, "--dtype", "f16", "--force", check=False)
        one_error_line(proc, "would overwrite the input")
        assert src.read_bytes() == before
    assert no_temporaries(tmp) == []


def test_1_output_onto_the_adapter_config_is_refused(scalpel, tmp):
    adapter = tmp / "adapter"
    shutil.copytree(PLAIN_A, adapter)
    before = (adapter / "adapter_config.json").read_bytes()
    proc = scalpel.run("merge", LLAMA, adapter, "-o", adapter / "adapter_model.safetensors", "--force", check=False)
    one_error_line(proc, "would overwrite the input")
    assert (adapter / "adapter_config.json").read_bytes() == before


# --------------------------------------------------------------------------------------------------
# 2. inspect --stats of huge finite values: no trap, finite statistics.
# --------------------------------------------------------------------------------------------------

def test_2_stats_of_values_near_the_f32_limit(scalpel, tmp):
    path = tmp / "big.safetensors"
    x = np.array([1e20, -1e20] * 5000 + [3e38, -3e38], np.float32)
    save_file({"x": x}, str(path))
    proc = scalpel.run("inspect", path, "--stats")
    assert "x" in proc.stdout
    stats = scalpel.inspect(path, "--stats")["tensors"][0]
    want = x.astype(np.float64)
    assert stats["std"] == pytest.approx(want.std(), rel=1e-6)
    assert stats["mean"] == pytest.approx(want.mean(), abs=1e-6 * 3e38)
    assert stats["mean_abs"] == pytest.approx(np.abs(want).mean(), rel=1e-6)


# --------------------------------------------------------------------------------------------------
# 3. Integer overflow on crafted headers.
# --------------------------------------------------------------------------------------------------

def crafted_u8_header():
    """U8 tensors whose sizes add up to 2**63 - 1: the end of the data (8 + header + sizes) overflows."""
    header = {f"t{i:02d}": {"dtype": "U8", "shape": [2 ** 59 - (i == 15)],
                           "data_offsets": [i * 2 ** 59, (i + 1) * 2 ** 59 - (i == 15)]} for i in range(16)}
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    return struct.pack("<Q", len(text)) + text


def test_3_sizes_adding_up_past_int64_are_refused(scalpel, tmp):
    path = tmp / "sum.safetensors"
    path.write_bytes(crafted_u8_header())
    for args in (["inspect", path], ["inspect", path, "--stats"], ["convert", path, tmp / "o.safetensors"]):
        one_error_line(scalpel.run(*args, check=False), path, "add up past")


def test_3_header_only_zstd_path_with_overflowing_counts(scalpel, tmp):
    raw = tmp / "sum.safetensors"
    raw.write_bytes(crafted_u8_header())
    zst = tmp / "sum.safetensors.zst"
    subprocess.run(["zstd", "-q", "-f", raw, "-o", zst], check=True)
    one_error_line(scalpel.run("inspect", zst, check=False), zst, "add up past")
    one_error_line(scalpel.run("inspect", zst, "--json", check=False), zst, "add up past")
    # F4 elements are twice the bytes: seven tensors of 2**60 - 1 bytes hold more than 2**63 elements.
    header = {f"t{i}": {"dtype": "F4", "shape": [2 ** 61 - 2], "data_offsets": [i * (2 ** 60 - 1), (i + 1) * (2 ** 60 - 1)]}
              for i in range(7)}
    text = json.dumps(header).encode()
    raw.write_bytes(struct.pack("<Q", len(text)) + text)
    subprocess.run(["zstd", "-q", "-f", raw, "-o", zst], check=True)
    one_error_line(scalpel.run("inspect", zst, check=False), zst, "add up past")


# --------------------------------------------------------------------------------------------------
# 4. Reading a compressed header costs memory in proportion to the header; bombs are refused early.
# --------------------------------------------------------------------------------------------------

def max_rss_kib(binary, *args, env=None):
    """Runs the command in a fresh Python child and returns (returncode, stderr, max RSS in KiB)."""
    code = ("import resource, subprocess, sys, json\n"
            "p = subprocess.run(sys.argv[1:], capture_output=True, text=True, stdin=subprocess.DEVNULL)\n"
            "print(json.dumps([p.returncode, p.stderr, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss]))\n")
    out = subprocess.run([sys.executable, "-c", code, str(binary), *map(str, args)], capture_output=True, text=True,
                         env=None if env is None else {**os.environ, **env}, check=True)
    return json.loads(out.stdout)


def zstd_of(prefix: bytes, zeros: int, out: Path):
    """out = zstd(prefix + zeros zero bytes), streamed (no big buffer in this process)."""
    p = subprocess.Popen(["zstd", "-q", "-1", "-f", "-o", str(out)], stdin=subprocess.PIPE)
    p.stdin.write(prefix)
    block = bytes(1 << 20)
    left = zeros
    while left > 0:
        n = min(left, len(block))
        p.stdin.write(block[:n])
        left -= n
    p.stdin.close()
    assert p.wait() == 0


def test_4_gguf_zst_with_a_huge_array_count_reads_little(scalpel, scalpel_bin, tmp):
    # A GGUF header whose u8 array declares 2**40 elements, then 1 GiB of zeros: the content is too short
    # for the array, which must be found without holding the 1 GiB.
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    key = b"test.bomb"
    head += struct.pack("<Q", len(key)) + key + struct.pack("<IIQ", 9, 0, 2 ** 40)
    path = tmp / "bomb.gguf.zst"
    zstd_of(head, 1 << 30, path)
    assert path.stat().st_size < 200_000
    rc, err, rss = max_rss_kib(scalpel_bin, "inspect", path)
    assert rc == 1 and len(err.splitlines()) == 1 and str(path) in err, err
    assert "past the end" in err
    assert rss < 200 * 1024, f"inspect used {rss} KiB"


def test_4_zero_bomb_given_to_convert_writes_nothing(scalpel, scalpel_bin, tmp):
    scratch = tmp / "scratch"
    scratch.mkdir()
    path = tmp / "zeros.safetensors.zst"
    zstd_of(b"", 2 << 30, path)
    rc, err, rss = max_rss_kib(scalpel_bin, "convert", path, tmp / "out.safetensors", env={"TMPDIR": str(scratch)})
    assert rc == 1 and len(err.splitlines()) == 1 and str(path) in err, err
    assert rss < 200 * 1024, f"convert used {rss} KiB"
    assert list(scratch.iterdir()) == []
    assert not (tmp / "out.safetensors").exists()


def test_4_content_longer_than_its_header_stops_decompression(scalpel, tmp):
    scratch = tmp / "scratch"
    scratch.mkdir()
    raw = tmp / "valid.safetensors"
    save_file({"w": np.arange(64, dtype=np.float32)}, str(raw))
    path = tmp / "long.safetensors.zst"
    zstd_of(raw.read_bytes(), 64 << 20, path)
    proc = scalpel.run("convert", path, tmp / "out.safetensors", check=False, env={"TMPDIR": str(scratch)})
    one_error_line(proc, path, "longer than")
    assert list(scratch.iterdir()) == []


# --------------------------------------------------------------------------------------------------
# 5. A valid .zst whose content is a multiple of 128 KiB.
# --------------------------------------------------------------------------------------------------

def st_of_exact_size(path, total):
    """A valid safetensors file of exactly `total` bytes (one U8 tensor filling the rest)."""
    for pad in range(0, 64):
        n = total - 8 - 80 - pad
        header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}).encode()
        header += b" " * (total - 8 - n - len(header))
        if 8 + len(header) + n == total and (8 + len(header)) % 8 == 0:
            data = (np.arange(n) % 251).astype(np.uint8).tobytes()
            Path(path).write_bytes(struct.pack("<Q", len(header)) + header + data)
            return
    raise AssertionError("no layout")


@pytest.mark.parametrize("kib", [128, 256, 1024])
def test_5_zst_of_a_multiple_of_128_kib(scalpel, tmp, kib):
    raw = tmp / "exact.safetensors"
    st_of_exact_size(raw, kib * 1024)
    zst = tmp / "exact.safetensors.zst"
    subprocess.run(["zstd", "-q", "-f", raw, "-o", zst], check=True)
    scalpel.run("inspect", zst, "--stats")
    scalpel.run("convert", zst, tmp / "back.safetensors")
    assert read_safetensors_raw(tmp / "back.safetensors") == read_safetensors_raw(raw)
    # Scalpel's own .zst output of the same file reads back.
    scalpel.run("convert", raw, tmp / "own.safetensors.zst")
    scalpel.run("convert", tmp / "own.safetensors.zst", tmp / "own.safetensors")
    assert read_safetensors_raw(tmp / "own.safetensors") == read_safetensors_raw(raw)
    # Scalpel's own .zst of content that is exactly a multiple of 128 KiB (its writer's compact,
    # 8-aligned header): written, then read back.
    for n in range(kib * 1024 - 200, kib * 1024):
        h = len(json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}}, separators=(",", ":")))
        if 8 + (h + 7) // 8 * 8 + n == kib * 1024:
            break
    src = tmp / "n.safetensors"
    save_file({"w": (np.arange(n) % 251).astype(np.uint8)}, str(src))
    scalpel.run("convert", src, tmp / "n.safetensors.zst")
    scalpel.run("convert", tmp / "n.safetensors.zst", tmp / "n2.safetensors")
    assert (tmp / "n2.safetensors").stat().st_size == kib * 1024
    scalpel.run("inspect", tmp / "n.safetensors.zst", "--stats")


# --------------------------------------------------------------------------------------------------
# 6. A FIFO never blocks a run.
# --------------------------------------------------------------------------------------------------

def test_6_fifo_as_input_config_or_index(scalpel, tmp):
    fifo = tmp / "in.safetensors"
    os.mkfifo(fifo)
    one_error_line(scalpel.run("inspect", fifo, check=False, timeout=20), fifo, "not a regular file")
    adapter = tmp / "adapter"
    adapter.mkdir()
    shutil.copy(PLAIN_A / "adapter_model.safetensors", adapter)
    os.mkfifo(adapter / "adapter_config.json")
    one_error_line(scalpel.run("merge", LLAMA, adapter, "-o", tmp / "m.safetensors", check=False, timeout=20),
                   "adapter_config.json", "not a regular file")
    folder = tmp / "model"
    folder.mkdir()
    os.mkfifo(folder / "model.safetensors.index.json")
    one_error_line(scalpel.run("inspect", folder, check=False, timeout=20), "index.json", "not a regular file")


def test_6_fifo_next_to_the_weights_is_not_copied(scalpel, tmp):
    folder = tmp / "model"
    folder.mkdir()
    save_file({"w": np.ones((4, 4), np.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    os.mkfifo(folder / "tokenizer.json")
    scalpel.run("convert", folder, tmp / "out", "--shard-size", "1MB", timeout=20)
    assert "tokenizer.json" not in [p.name for p in (tmp / "out").iterdir()]


# --------------------------------------------------------------------------------------------------
# 9. Untrusted strings are escaped in messages and tables.
# --------------------------------------------------------------------------------------------------

EVIL = "w\nscalpel: error: forged\r\x1b[2J"


def test_9_tensor_name_with_newline_and_escape_in_an_error(scalpel, tmp):
    path = tmp / "evil.safetensors"
    header = {EVIL: {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(12))
    proc = scalpel.run("inspect", path, check=False)
    line = one_error_line(proc, path, "\\n", "\\r", "\\e[2J")
    assert "\x1b" not in proc.stderr and "\r" not in proc.stderr


def test_9_names_and_metadata_are_escaped_in_tables(scalpel, tmp):
    path = tmp / "evil.safetensors"
    write_safetensors_raw(path, [(EVIL, "F32", [4], bytes(16))], metadata={"k\x1b]0;title\x07": "v\nw"})
    out = scalpel.run("inspect", path, "--tensors", "--metadata", "--stats").stdout
    assert "\x1b" not in out and "\r" not in out and "\x07" not in out
    assert "w\\nscalpel: error: forged\\r\\e[2J" in out
    assert "v\\nw" in out
    gguf_path = tmp / "evil.gguf"
    w = gguf.GGUFWriter(str(gguf_path), "llama")
    w.add_string("evil.key\x1b[31m", "line1\nline2")
    w.add_tensor("t\x1b[0m", np.ones(4, np.float32))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    out = scalpel.run("inspect", gguf_path, "--tensors", "--metadata").stdout
    assert "\x1b" not in out and "line1\\nline2" in out


# --------------------------------------------------------------------------------------------------
# 10. merge refuses non-finite results.
# --------------------------------------------------------------------------------------------------

def test_10_merge_with_nan_factors_or_an_overflowing_weight(scalpel, tmp):
    from safetensors.numpy import load_file
    nan_adapter = tmp / "nan"
    shutil.copytree(PLAIN_A, nan_adapter)
    tensors = load_file(str(nan_adapter / "adapter_model.safetensors"))
    first = sorted(k for k in tensors if k.endswith("lora_B.weight"))[0]
    tensors[first] = np.full_like(tensors[first], np.nan)
    save_file(tensors, str(nan_adapter / "adapter_model.safetensors"))
    out = tmp / "m.safetensors"
    one_error_line(scalpel.run("merge", LLAMA, nan_adapter, "-o", out, check=False), "nan", "NaN or infinite")
    assert not out.exists()
    one_error_line(scalpel.run("merge", LLAMA, f"{PLAIN_A}:1e39", "-o", out, check=False), "plain_a", "NaN or infinite")
    assert not out.exists()
    assert no_temporaries(tmp) == []


# --------------------------------------------------------------------------------------------------
# 11. Shards may not escape the model folder; file bytes are never printed as numbers.
# --------------------------------------------------------------------------------------------------

def test_11_shard_symlinked_out_of_the_folder(scalpel, tmp):
    secret = tmp / "secret.txt"
    secret.write_bytes(b"hunter2!" * 4)
    model = tmp / "model"
    model.mkdir()
    save_file({"a": np.ones(4, np.float32)}, str(model / "model-00001-of-00002.safetensors"))
    (model / "model-00002-of-00002.safetensors").symlink_to(secret)
    (model / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    proc = scalpel.run("inspect", model, check=False)
    one_error_line(proc, "outside the model folder")
    number = str(struct.unpack("<Q", b"hunter2!")[0])
    assert number not in proc.stderr


def test_11_hugging_face_cache_snapshot_symlinks_are_allowed(scalpel, tmp):
    blobs = tmp / "models--x" / "blobs"
    snap = tmp / "models--x" / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    save_file({"a": np.ones(4, np.float32)}, str(blobs / "1111"))
    save_file({"b": np.ones(4, np.float32)}, str(blobs / "2222"))
    (snap / "model-00001-of-00002.safetensors").symlink_to("../../blobs/1111")
    (snap / "model-00002-of-00002.safetensors").symlink_to("../../blobs/2222")
    (snap / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    report = scalpel.inspect(snap)
    assert sorted(t["name"] for t in report["tensors"]) == ["a", "b"]


def test_11_header_length_of_a_non_safetensors_file_is_not_printed(scalpel, tmp):
    path = tmp / "text.safetensors"
    path.write_bytes(b"root:x:0:0:root:/root:/bin/bash\n" * 4)
    proc = scalpel.run("inspect", path, check=False)
    line = one_error_line(proc, path)
    assert str(struct.unpack("<Q", b"root:x:0")[0]) not in line


# --------------------------------------------------------------------------------------------------
# 12. Strict PEFT config types.
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,expected", [
    ("lora_alpha", "x", "lora_alpha must be a finite number"),
    ("r", "4", "r must be a positive integer"),
    ("r", 0, "r must be a positive integer"),
    ("rank_pattern", {"q_proj(": 4}, "rank_pattern key"),
    ("alpha_pattern", {"[": 4}, "alpha_pattern key"),
    ("rank_pattern", {"q_proj": "4"}, "rank_pattern \"q_proj\" must be a positive integer"),
    ("use_rslora", "yes", "use_rslora must be true or false"),
    ("target_modules", 7, "target_modules must be"),
    ("modules_to_save", "lm_head", "modules_to_save must be a list"),
])
def test_12_wrong_types_in_adapter_config(scalpel, tmp, key, value, expected):
    adapter = tmp / "adapter"
    shutil.copytree(PLAIN_A, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config[key] = value
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    for args in (["merge", LLAMA, adapter, "-o", tmp / "m.safetensors"], ["inspect", adapter]):
        one_error_line(scalpel.run(*args, check=False), "adapter_config.json", expected)
    assert not (tmp / "m.safetensors").exists()


# --------------------------------------------------------------------------------------------------
# 13. Every error names the user's file.
# --------------------------------------------------------------------------------------------------

def test_13_unsupported_dequantize_names_file_and_tensor(scalpel, tmp):
    path = tmp / "iq2.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tensor("blk.0.w", np.zeros((1, 66), np.uint8), raw_dtype=gguf.GGMLQuantizationType.IQ2_XXS)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    for args in (["inspect", path, "--stats"], ["convert", path, tmp / "o.gguf", "--dtype", "f16"]):
        one_error_line(scalpel.run(*args, check=False), f"{path}: blk.0.w: ", "IQ2_XXS")
