# Shared by the benchmark scripts in scripts/bench/ (sourced, not run).
# Each benchmark script writes one Markdown section to docs/bench/NAME.md; scripts/bench.sh runs them
# all and joins the sections into docs/benchmarks.md.

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
SCALPEL=${SCALPEL_BIN:-$REPO/.build/release/scalpel}
PY=${PYTHON:-$REPO/.venv/bin/python}
BENCH_DIR=$REPO/work/bench
SECTIONS=$REPO/docs/bench
mkdir -p "$BENCH_DIR" "$SECTIONS"

# Median/min/max of a command as JSON (hyperfine when installed, else a loop).
timing() { "$PY" "$REPO/scripts/bench/timing.py" "$@"; }

# Reads one field of a JSON object given on stdin.
field() { "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# One line describing the machine, for each section.
machine_line() {
    printf '%s, %s cores, %s GiB RAM, commit %s' \
        "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" \
        "$(free -g | awk '/^Mem:/ {print $2}')" "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
}

# Synthetic F32 checkpoints with the same 1024 tensors (so the same header): 4 GiB and 4 MiB of data.
BIG=$BENCH_DIR/big.safetensors
SMALL=$BENCH_DIR/small.safetensors
BIG_CMD="synth_safetensors.py big.safetensors --tensors 1024 --rows 1024 --cols 1024"
SMALL_CMD="synth_safetensors.py small.safetensors --tensors 1024 --rows 32 --cols 32"
ensure_synthetic() {
    if [ ! -f "$BIG" ]; then
        echo "writing $BIG (4 GiB)"
        "$PY" scripts/bench/synth_safetensors.py "$BIG.partial" --tensors 1024 --rows 1024 --cols 1024 --seed 1
        mv "$BIG.partial" "$BIG"
    fi
    if [ ! -f "$SMALL" ]; then
        "$PY" scripts/bench/synth_safetensors.py "$SMALL.partial" --tensors 1024 --rows 32 --cols 32 --seed 2
        mv "$SMALL.partial" "$SMALL"
    fi
}

# Seconds -> "1.234 s" / "12.3 ms".
human_seconds() { "$PY" -c 'import sys; s=float(sys.argv[1]); print(f"{s:.3f} s" if s >= 1 else f"{s*1e3:.1f} ms")' "$1"; }
