"""The interface every command shares (the pipeline issue): --help, --json schemas and --dry-run against
golden files, --force, --threads, case-insensitive types, warnings, typo suggestions, exit codes, and
the progress line in a real pseudo-terminal.

Golden files live in tests/interop/golden/; `SCALPEL_UPDATE_GOLDEN=1 pytest tests/interop/test_pipeline.py`
rewrites them (review the diff before committing)."""
import json
import os
import pty
import select
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "interop" / "golden"
UPDATE = os.environ.get("SCALPEL_UPDATE_GOLDEN") == "1"
LLAMA = REPO / "fixtures" / "peft" / "llama_base"
ADAPTER_A = REPO / "fixtures" / "peft" / "adapters" / "plain_a"
ADAPTER_B = REPO / "fixtures" / "peft" / "adapters" / "plain_b"
EXTRACT_BASE = REPO / "fixtures" / "extract" / "base"
EXTRACT_TUNED = REPO / "fixtures" / "extract" / "tuned"
COMMANDS = ["inspect", "convert", "quantize", "dequantize", "prune", "extract-lora", "merge", "stack"]


def golden(path: Path, text: str):
    """Compares `text` with the golden file (or rewrites it when SCALPEL_UPDATE_GOLDEN=1)."""
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with SCALPEL_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs from the golden file"


def schema(value):
    """The shape of a JSON value: key -> type for objects (lists of objects: the first item's keys)."""
    if isinstance(value, dict):
        return {k: schema(v) for k, v in value.items()}
    if isinstance(value, list):
        return [schema(value[0])] if value and isinstance(value[0], dict) else "list"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "null" if value is None else "string"


def files_in(folder: Path):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


# What each writing command runs, as (arguments before the output, output name, arguments after).
WRITERS = {
    "convert": ([LLAMA / "model.safetensors"], "out.gguf", ["--arch", "llama"]),
    "quantize": ([LLAMA / "model.safetensors"], "out.gguf", ["--type", "q8_0"]),
    "dequantize": (None, "deq.safetensors", []),  # input made by the test
    "prune": ([LLAMA / "model.safetensors"], "pruned.safetensors", ["--sparsity", "0.5"]),
    "merge": ([LLAMA, ADAPTER_A, "-o"], "merged", []),
    "stack": ([ADAPTER_A, ADAPTER_B, "-o"], "stacked", ["--method", "svd", "--rank", "4"]),
    "extract-lora": (["--base", EXTRACT_BASE, "--tuned", EXTRACT_TUNED, "-o"], "adapter", ["--rank", "4"]),
}


def writer_args(command, tmp):
    before, out, after = WRITERS[command]
    if before is None:
        q = tmp / "q.gguf"
        if not q.exists():
            subprocess.run([os.environ.get("SCALPEL_BIN", REPO / ".build/release/scalpel"), "quantize",
                            LLAMA / "model.safetensors", q, "--type", "q4_0", "--quiet"], check=True)
        before = [q]
    return [command, *before, tmp / out, *after], tmp / out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_is_golden(scalpel, command):
    text = scalpel.run(command, "--help").stdout
    golden(GOLDEN / "help" / f"{command}.txt", text)
    assert all(len(line) <= 80 for line in text.splitlines() if line.startswith("  scalpel ")), "help examples wrap at 80 columns"


def test_root_help_lists_every_command(scalpel):
    text = scalpel.run("--help").stdout
    for command in COMMANDS:
        assert command in text


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_json_schema_is_golden_and_shared(scalpel, tmp, command):
    args, out = writer_args(command, tmp)
    data = json.loads(scalpel.run(*args, "--json").stdout)
    for key in ["command", "output", "dry_run", "files", "bytes_written", "tensors_written", "seconds", "warnings"]:
        assert key in data, f"{command} --json lacks the common key {key}"
    assert data["command"] == command and data["dry_run"] is False and data["output"] == str(out)
    assert data["bytes_written"] == size_of(out) == sum(f["bytes"] for f in data["files"])
    golden(GOLDEN / "json" / f"{command}.json", json.dumps(schema(data), indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_dry_run_writes_nothing_and_predicts_the_exact_size(scalpel, tmp, command):
    args, out = writer_args(command, tmp)
    before = files_in(tmp)
    plan = json.loads(scalpel.run(*args, "--dry-run", "--json").stdout)
    assert files_in(tmp) == before, "--dry-run wrote something"
    assert plan["dry_run"] is True and plan["plan"], plan
    assert {"name", "action", "type", "shape", "bytes"} <= set(plan["plan"][0])
    text = scalpel.run(*args, "--dry-run").stdout
    assert "nothing written (--dry-run)" in text
    assert files_in(tmp) == before
    done = json.loads(scalpel.run(*args, "--json").stdout)
    assert plan["predicted_bytes"] == size_of(out) == done["bytes_written"]
    assert sorted(f["path"] for f in plan["files"]) == sorted(f["path"] for f in done["files"])
    golden(GOLDEN / "json" / f"{command}-dry-run.json", json.dumps(schema(plan), indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("command", ["convert", "merge"])
def test_force_replaces_files_and_folders_alike(scalpel, tmp, command):
    args, out = writer_args(command, tmp)
    if command == "merge":
        out.mkdir()
        (out / "old.txt").write_text("old")
    else:
        out.write_bytes(b"old")
    proc = scalpel.run(*args, check=False)
    assert proc.returncode == 1 and "output already exists (--force replaces it)" in proc.stderr
    assert proc.stderr.count("\n") == 1
    scalpel.run(*args, "--force")
    if command == "merge":
        assert not (out / "old.txt").exists() and (out / "model.safetensors").exists()
    else:
        assert out.stat().st_size > 100
    assert not [p for p in tmp.iterdir() if p.name.startswith(".")], "temporary or moved-aside files left"


def test_force_never_replaces_an_input(scalpel, tmp):
    src = tmp / "m.safetensors"
    shutil.copy(LLAMA / "model.safetensors", src)
    before = src.read_bytes()
    proc = scalpel.run("convert", src, src, "--force", check=False)
    assert proc.returncode == 1 and "would overwrite the input" in proc.stderr
    assert src.read_bytes() == before


@pytest.mark.parametrize("args", [
    ["quantize", "{m}", "{o}.gguf", "--type", "q4_0"],
    ["quantize", "{m}", "{o}.safetensors", "--type", "nf4"],
    ["prune", "{m}", "{o}.safetensors", "--sparsity", "0.5", "--scope", "global"],
    ["convert", "{m}", "{o}.safetensors", "--dtype", "f16"],
    ["stack", ADAPTER_A, ADAPTER_B, "-o", "{o}", "--method", "ties_svd", "--density", "0.5", "--rank", "4"],
    ["extract-lora", "--base", EXTRACT_BASE, "--tuned", EXTRACT_TUNED, "-o", "{o}", "--energy", "0.8"],
    ["merge", LLAMA, ADAPTER_A, ADAPTER_B, "-o", "{o}.safetensors"],
])
def test_threads_do_not_change_a_byte(scalpel, tmp, args):
    outputs = []
    for threads in [1, 4]:
        out = tmp / f"t{threads}"
        concrete = [str(a).replace("{m}", str(LLAMA / "model.safetensors")).replace("{o}", str(out)) for a in args]
        scalpel.run(*concrete, "--threads", threads, "--quiet")
        produced = next(p for p in tmp.iterdir() if p.name.startswith(f"t{threads}"))
        outputs.append({str(p.relative_to(produced)): p.read_bytes() for p in produced.rglob("*") if p.is_file()}
                       if produced.is_dir() else produced.read_bytes())
    assert outputs[0] == outputs[1]


def test_types_are_case_insensitive(scalpel, tmp):
    lower = tmp / "a.gguf"
    upper = tmp / "b.gguf"
    scalpel.run("quantize", LLAMA / "model.safetensors", lower, "--type", "q4_0", "--type-for", "*.v_proj.*=q8_0")
    scalpel.run("quantize", LLAMA / "model.safetensors", upper, "--type", "Q4_0", "--type-for", "*.v_proj.*=Q8_0")
    assert lower.read_bytes() == upper.read_bytes()
    scalpel.run("convert", LLAMA / "model.safetensors", tmp / "h.safetensors", "--dtype", "F16")
    assert all(v.dtype == np.float16 for v in load_file(tmp / "h.safetensors").values())


def test_a_glob_that_matches_nothing_warns(scalpel, tmp):
    proc = scalpel.run("quantize", LLAMA / "model.safetensors", tmp / "o.gguf", "--type", "q4_0",
                       "--type-for", "*.attn_v.*=q8_0", "--skip", "nothing.*")
    assert "scalpel: warning: --type-for '*.attn_v.*' matches no tensor" in proc.stderr
    assert "scalpel: warning: --skip 'nothing.*' matches no tensor" in proc.stderr
    quiet = scalpel.run("quantize", LLAMA / "model.safetensors", tmp / "p.gguf", "--type", "q4_0",
                        "--type-for", "*.attn_v.*=q8_0", "--quiet")
    assert quiet.stderr == "" and quiet.stdout == ""


@pytest.mark.parametrize("argv, message", [
    (["quantise", "m", "x.gguf", "--type", "q4_0"], "unknown command 'quantise'; did you mean 'scalpel quantize'?"),
    (["quantize", "m", "x.gguf", "--tpye", "q4_0"], "unknown option '--tpye' for 'scalpel quantize'; did you mean '--type'?"),
    (["prune", "m", "x.gguf", "--sparsty", "0.5"], "did you mean '--sparsity'?"),
])
def test_typos_get_suggestions_and_exit_64(scalpel, argv, message):
    proc = scalpel.run(*argv, check=False)
    assert proc.returncode == 64 and message in proc.stderr


def test_unknown_output_extension_is_refused(scalpel, tmp):
    proc = scalpel.run("convert", LLAMA / "model.safetensors", tmp / "out.bin", check=False)
    assert proc.returncode == 1
    assert "does not write .bin files; the output must be NAME.safetensors, NAME.gguf" in proc.stderr
    assert list(tmp.iterdir()) == []


def test_json_input_is_named_for_what_it_is(scalpel):
    proc = scalpel.run("inspect", LLAMA / "config.json", check=False)
    assert proc.returncode == 1 and "JSON" in proc.stderr and "header length" not in proc.stderr


def test_merging_into_nothing_is_an_error(scalpel, tmp):
    gpt2 = REPO / "fixtures" / "peft" / "adapters" / "gpt2_fifo"
    proc = scalpel.run("merge", LLAMA, gpt2, "-o", tmp / "m.safetensors", "--ignore-missing", check=False)
    assert proc.returncode == 1 and "nothing would be merged" in proc.stderr
    assert list(tmp.iterdir()) == []


def test_extracting_from_unrelated_checkpoints_says_no_names_match(scalpel, tmp):
    other = tmp / "other.safetensors"
    save_file({"transformer.h.0.attn.c_attn.weight": np.ones((8, 8), np.float32)}, other)
    proc = scalpel.run("extract-lora", "--base", LLAMA, "--tuned", other, "-o", tmp / "a", check=False)
    assert proc.returncode == 1 and "no tensor name is in both checkpoints" in proc.stderr


def test_weight_values_given_as_paths_are_explained(scalpel, tmp):
    proc = scalpel.run("merge", LLAMA, ADAPTER_A, ADAPTER_B, "-o", tmp / "m.safetensors", "--weight", "0.5", "0.5", check=False)
    assert proc.returncode == 64 and "'0.5' is a number, not an adapter" in proc.stderr


def test_a_missed_max_error_is_warned_about(scalpel, tmp):
    proc = scalpel.run("extract-lora", "--base", EXTRACT_BASE, "--tuned", EXTRACT_TUNED, "-o", tmp / "a",
                       "--max-error", "0.001", "--max-rank", "2")
    assert "missed --max-error 0.001 at the rank cap (--max-rank 2)" in proc.stderr


def test_ties_without_truncation_warns_about_its_size(scalpel, tmp):
    proc = scalpel.run("stack", ADAPTER_A, ADAPTER_B, "-o", tmp / "t", "--method", "ties", "--density", "0.5")
    assert "stores each combined update at full rank; add --method ties_svd --rank R" in proc.stderr


def test_adapters_get_a_model_card(scalpel, tmp):
    scalpel.run("stack", ADAPTER_A, ADAPTER_B, "-o", tmp / "s")
    card = (tmp / "s" / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: peft" in card and str(ADAPTER_A) in card
    scalpel.run("extract-lora", "--base", EXTRACT_BASE, "--tuned", EXTRACT_TUNED, "-o", tmp / "e", "--rank", "2")
    assert "library_name: peft" in (tmp / "e" / "README.md").read_text()


def test_counts_read_as_english(scalpel, tmp):
    out = scalpel.run("quantize", LLAMA / "model.safetensors", tmp / "o.gguf", "--type", "q8_0", "--only", "*.q_proj.*").stdout
    assert "quantized 2 tensors" in out or "quantized 1 tensor " in out
    adapter = scalpel.run("inspect", ADAPTER_A).stdout
    assert "lora_alpha 16.0" not in adapter


def run_in_pty(argv):
    """Runs argv with stderr on a pseudo-terminal (stdout piped); returns (stderr bytes, exit code)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=600)
    proc.stdout.read()
    os.close(master)
    return b"".join(chunks), proc.returncode


def test_progress_redraws_on_a_terminal_and_is_silent_when_piped(scalpel_bin, tmp):
    big = tmp / "big.safetensors"
    rng = np.random.default_rng(0)
    save_file({f"model.layers.{i}.mlp.up_proj.weight": rng.standard_normal((512, 1024), dtype=np.float32) for i in range(24)}, big)
    err, code = run_in_pty([str(scalpel_bin), "quantize", str(big), str(tmp / "q.gguf"), "--type", "q4_0"])
    assert code == 0, err
    assert b"\r\x1b[K[" in err, err[:500]
    assert b"/24]" in err and b"GB/s" in err
    assert err.endswith(b"\n") and b"wrote 24 tensors" in err.splitlines()[-1]
    piped = subprocess.run([str(scalpel_bin), "quantize", str(big), str(tmp / "r.gguf"), "--type", "q4_0"],
                           capture_output=True, stdin=subprocess.DEVNULL)
    assert piped.returncode == 0 and piped.stderr == b""
    verbose = subprocess.run([str(scalpel_bin), "quantize", str(big), str(tmp / "s.gguf"), "--type", "q4_0", "--verbose"],
                             capture_output=True, stdin=subprocess.DEVNULL, text=True)
    lines = [l for l in verbose.stderr.splitlines() if l.startswith("[")]
    assert len(lines) == 24 and "type = Q4_0" in lines[0] and "quantize to Q4_0" in lines[0]
