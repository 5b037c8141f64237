#!/usr/bin/env bash
# Benchmark of `scalpel extract-lora` (not a test): writes docs/bench/05-extract-lora.md.
#
#  1. Side by side in one run on the same synthetic pair (extract_lora_inputs.py svd8: 8 layers of
#     [2048, 2048] and [2048, 5632], F32, decaying spectrum + noise):
#     - scalpel extract-lora --rank 16 and --rank 64 (randomized SVD; median of 3 after a warm-up);
#     - the peers' method in NumPy (extract_lora_reference.py: numpy.linalg.svd of every dW, truncated to 16
#       and 64 and written as two adapters; one run: the full SVD does not depend on the rank);
#     - scalpel extract-lora --exact --rank 64 (full sgesdd, one run), to separate algorithm from LAPACK.
#     Relative errors ||dW - B A|| / ||dW|| of scalpel's files (checked in NumPy) next to NumPy's optimal ones.
#  2. End to end on a 1B-parameter-shaped F16 pair (extract_lora_inputs.py tinyllama): wall time and peak RSS
#     from /usr/bin/time -v for --rank 16, --rank 64 and --max-error 0.3 --max-rank 128.
#
# Needs about 6 GB of free disk (work/bench/extract, removed at the end) and 2 GB of memory.
# Environment: SCALPEL_BIN, PYTHON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -x "$SCALPEL" ] || { echo "no scalpel binary at $SCALPEL (make build)"; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)"; exit 1; }
DIR=$BENCH_DIR/extract
GEN="$REPO/scripts/bench/extract_lora_inputs.py"
REF="$REPO/scripts/bench/extract_lora_reference.py"
mkdir -p "$DIR"
line=$(machine_line)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

pair() { # LAYOUT -> writes $DIR/LAYOUT-{base,tuned}.safetensors once
    if [ ! -f "$DIR/$1-base.safetensors" ] || [ ! -f "$DIR/$1-tuned.safetensors" ]; then
        echo "writing the $1 pair"
        "$PY" "$GEN" "$1" "$DIR/$1-base.safetensors" "$DIR/$1-tuned.safetensors"
    fi
}
num() { "$PY" -c "import sys; print(format(eval(sys.argv[1]), sys.argv[2]))" "$1" "$2"; }

# ---- 1. scalpel (randomized) vs a full SVD in NumPy, same pair -------------------------------------------
pair svd8
SB=$DIR/svd8-base.safetensors ST=$DIR/svd8-tuned.safetensors
declare -A med
for r in 16 64; do
    t=$(timing --runs 3 --warmup 1 --prepare "rm -rf '$DIR/s$r'" -- \
        "$SCALPEL" extract-lora --base "$SB" --tuned "$ST" -o "$DIR/s$r" --rank "$r")
    med[$r]=$(field median <<<"$t"); echo "scalpel rank $r: $t"
done
rm -rf "$DIR/exact"
exact=$(timing --runs 1 --warmup 0 -- "$SCALPEL" extract-lora --base "$SB" --tuned "$ST" -o "$DIR/exact" --rank 64 --exact)
echo "scalpel --exact: $exact"
rm -rf "$DIR/np-r16" "$DIR/np-r64"
load_before=$(cut -d' ' -f1 /proc/loadavg)
numpy=$(timing --runs 1 --warmup 0 -- "$PY" "$REF" extract "$SB" "$ST" "$DIR/np" 16,64 "$DIR/np-errors.json")
load_after=$(cut -d' ' -f1 /proc/loadavg)
echo "numpy: $numpy (load average $load_before before, $load_after after)"
for r in 16 64; do "$PY" "$REF" errors "$SB" "$ST" "$DIR/s$r" "$DIR/s$r-errors.json"; done
"$PY" "$REF" errors "$SB" "$ST" "$DIR/exact" "$DIR/exact-errors.json"
np_t=$(field median <<<"$numpy"); exact_t=$(field median <<<"$exact")
errors_table=$("$PY" - "$DIR" <<'EOF'
import json, sys
d = sys.argv[1]
opt = json.load(open(f"{d}/np-errors.json"))
exact = json.load(open(f"{d}/exact-errors.json"))
rows = []
for r in (16, 64):
    got = json.load(open(f"{d}/s{r}-errors.json"))
    for kind, shape in (("o_proj", "[2048, 2048]"), ("down_proj", "[2048, 5632]")):
        names = [n for n in got if kind in n]
        o = [opt[n][str(r)] for n in names]
        g = [got[n] for n in names]
        ratio = max(x / y for x, y in zip(g, o))
        ex = f"{max(exact[n] / opt[n]['64'] for n in names):.5f}" if r == 64 else ""
        rows.append(f"| {r} | {kind} {shape} x{len(names)} | {sum(o)/len(o):.5f} | {sum(g)/len(g):.5f} | {ratio:.5f} | {ex} |")
print("\n".join(rows))
EOF
)
worst=$("$PY" - "$DIR" <<'EOF'
import json, sys
d = sys.argv[1]
opt = json.load(open(f"{d}/np-errors.json"))
print(f"{max(json.load(open(f'{d}/s{r}-errors.json'))[n] / opt[n][str(r)] for r in (16, 64) for n in opt):.5f}")
EOF
)
rm -rf "$DIR/s16" "$DIR/s64" "$DIR/exact" "$DIR/np-r16" "$DIR/np-r64"

# ---- 2. end to end, 1B-shaped F16 pair --------------------------------------------------------------------
pair tinyllama
TB=$DIR/tinyllama-base.safetensors TT=$DIR/tinyllama-tuned.safetensors
measure() { # ARGS... -> "wall_seconds max_rss_kib" of scalpel extract-lora ARGS (output removed first)
    rm -rf "$DIR/e2e"
    /usr/bin/time -v "$SCALPEL" extract-lora --base "$TB" --tuned "$TT" -o "$DIR/e2e" "$@" > "$DIR/e2e.txt" 2> "$DIR/time.log"
    "$PY" - "$DIR/time.log" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
secs = 0.0
for part in wall.split(":"):
    secs = secs * 60 + float(part)
print(secs, int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)))
EOF
}
measure --rank 16 > /dev/null  # warm-up: both files in the page cache
e2e_rows=""
for args in "--rank 16" "--rank 64" "--max-error 0.3 --max-rank 128"; do
    read -r secs rss <<<"$(measure $args)"
    summary=$(grep -E "tensors decomposed" "$DIR/e2e.txt")
    echo "e2e $args: $secs s, $rss KiB; $summary"
    params=$(sed -E 's/.*adapter: ([0-9,]+) parameters, ([^;]+);.*keeps ([0-9.]+%).*/\1 | \2 | \3/' <<<"$summary")
    e2e_rows+="| \`$args\` | $secs s | $(( rss / 1024 )) MiB | $params |"$'\n'
done
e2e_example=$(head -4 "$DIR/e2e.txt"; echo "  ..."; grep -A3 "changed but not" "$DIR/e2e.txt"; echo "  ..."; tail -2 "$DIR/e2e.txt" | sed "s|$REPO/||g")
tb_bytes=$(stat -c %s "$TB")
rm -rf "$DIR/e2e"

{
    echo "## extract-lora: randomized SVD vs a full SVD in NumPy; 1B-shaped F16 pair end to end"
    echo
    echo "Run $started on $line."
    echo "scalpel: release build, OpenBLAS single-threaded with its own 2-thread blocking of the products; NumPy"
    echo "$("$PY" -c 'import numpy; print(numpy.__version__)') with its bundled OpenBLAS (2 threads). The machine is shared: other builds may have run."
    echo
    echo "### Side by side: 8 layers of [2048, 2048] + [2048, 5632], F32"
    echo
    echo "Pair: \`extract_lora_inputs.py svd8\` (16 matrices; dW = U diag(0.96^i, i < 128) V^T + N(0, 1e-4^2))."
    echo "The NumPy reference does what mergekit-extract-lora and kohya do (a full SVD of each dW in f32,"
    echo "truncated), one full SVD per matrix for both ranks, so its time is the same for 16 and 64."
    echo
    echo '```'
    echo "python scripts/bench/extract_lora_inputs.py svd8 svd8-base.safetensors svd8-tuned.safetensors"
    echo "scalpel extract-lora --base svd8-base.safetensors --tuned svd8-tuned.safetensors -o s16 --rank 16"
    echo "scalpel extract-lora --base svd8-base.safetensors --tuned svd8-tuned.safetensors -o s64 --rank 64"
    echo "scalpel extract-lora --base svd8-base.safetensors --tuned svd8-tuned.safetensors -o exact --rank 64 --exact"
    echo "python scripts/bench/extract_lora_reference.py extract svd8-base.safetensors svd8-tuned.safetensors np 16,64 np-errors.json"
    echo "python scripts/bench/extract_lora_reference.py errors svd8-base.safetensors svd8-tuned.safetensors s16 s16-errors.json"
    echo '```'
    echo
    echo "| command | wall time | vs NumPy |"
    echo "| --- | ---: | ---: |"
    echo "| \`scalpel extract-lora --rank 16\` (median of 3) | $(num "${med[16]}" .2f) s | **$(num "$np_t/${med[16]}" .0f)x** faster |"
    echo "| \`scalpel extract-lora --rank 64\` (median of 3) | $(num "${med[64]}" .2f) s | **$(num "$np_t/${med[64]}" .0f)x** faster |"
    echo "| \`scalpel extract-lora --rank 64 --exact\` (full sgesdd, 1 run) | $(num "$exact_t" .1f) s | $(num "$np_t/$exact_t" .2f)x |"
    echo "| NumPy full SVD per matrix, ranks 16 and 64 (1 run) | $(num "$np_t" .1f) s | 1x |"
    echo
    echo "1-minute load average just before / after the NumPy run: $load_before / $load_after (2 cores; above 2"
    echo "means other work competed for them, which slows the long NumPy run more than the short scalpel runs)."
    echo
    echo "Relative Frobenius errors ||dW - B A|| / ||dW|| of scalpel's adapter files (computed in NumPy from the"
    echo "files) next to the optimal error of the same rank from NumPy's singular values (means over the 8 layers):"
    echo
    echo "| rank | matrices | NumPy optimal | scalpel (randomized) | worst ratio | --exact worst ratio |"
    echo "| ---: | --- | ---: | ---: | ---: | ---: |"
    echo "$errors_table"
    echo
    echo "Worst ratio scalpel / optimal over all 32 factorizations: **$worst** (goal: at most 1.01)."
    echo
    echo "### End to end: 1B-parameter-shaped F16 pair"
    echo
    echo "Pair: \`extract_lora_inputs.py tinyllama\`: TinyLlama-1.1B shapes (22 layers, hidden 2048, intermediate 5632,"
    echo "4 KV heads, vocab 32000), F16, $tb_bytes bytes per file; each of the 154 linear layers differs by a"
    echo "rank-32 part (0.5 * 0.9^i) plus N(0, 1e-4^2); the 44 layer norms changed slightly; embeddings, lm_head"
    echo "and the final norm unchanged. Wall time and peak RSS (maximum resident set size) from \`/usr/bin/time -v\`,"
    echo "one run each after a warm-up run (files in the page cache); the adapter is written in F16 (the base's dtype)."
    echo
    echo '```'
    echo "python scripts/bench/extract_lora_inputs.py tinyllama base.safetensors tuned.safetensors"
    echo "/usr/bin/time -v scalpel extract-lora --base base.safetensors --tuned tuned.safetensors -o adapter ARGS"
    echo '```'
    echo
    echo "| ARGS | wall time | peak RSS | adapter parameters | adapter size | difference kept |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    printf '%s' "$e2e_rows"
    echo
    echo "Goal: peak RSS under 2 GB. Summary printed by the last run (abridged):"
    echo
    echo '```'
    echo "$e2e_example"
    echo '```'
    echo
} > "$SECTIONS/05-extract-lora.md"
cat "$SECTIONS/05-extract-lora.md"
rm -rf "$DIR"  # 5.4 GB of inputs: not kept for the sections that follow in `make bench`
