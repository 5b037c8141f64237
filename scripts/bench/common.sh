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
# The load average shows whether other work shared the cores during the run.
machine_line() {
    printf '%s, %s cores, %s GiB RAM, load average %s at start, commit %s' \
        "$(lscpu | sed -n 's/^Model name: *//p' | head -1)" "$(nproc)" \
        "$(free -g | awk '/^Mem:/ {print $2}')" "$(cut -d' ' -f1 /proc/loadavg)" \
        "$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
}

# Synthetic F32 checkpoints with the same 1024 tensors (so the same header): 4 GiB and 4 MiB of data.
BIG=$BENCH_DIR/big.safetensors
SMALL=$BENCH_DIR/small.safetensors
BIG_ARGS="--tensors 1024 --rows 1024 --cols 1024 --seed 1"
SMALL_ARGS="--tensors 1024 --rows 32 --cols 32 --seed 2"
BIG_CMD="synth_safetensors.py work/bench/big.safetensors $BIG_ARGS"
SMALL_CMD="synth_safetensors.py work/bench/small.safetensors $SMALL_ARGS"
ensure_synthetic() {
    if [ ! -f "$BIG" ]; then
        echo "writing $BIG (4 GiB)"
        "$PY" scripts/bench/synth_safetensors.py "$BIG.partial" $BIG_ARGS
        mv "$BIG.partial" "$BIG"
    fi
    if [ ! -f "$SMALL" ]; then
        "$PY" scripts/bench/synth_safetensors.py "$SMALL.partial" $SMALL_ARGS
        mv "$SMALL.partial" "$SMALL"
    fi
}

# Seconds -> "1.234 s" / "12.3 ms".
human_seconds() { "$PY" -c 'import sys; s=float(sys.argv[1]); print(f"{s:.3f} s" if s >= 1 else f"{s*1e3:.1f} ms")' "$1"; }

# The exact command a timing ran (from its JSON), with the repository path made relative.
command_of() { field command <<<"$1" | sed "s|$REPO/||g"; }
