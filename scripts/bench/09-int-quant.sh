#!/usr/bin/env bash
# Benchmark of the int8 (bitsandbytes LLM.int8) and int4/int8 compressed-tensors quantizers file to file
# (not a test): writes docs/bench/09-int-quant.md.
#
# The 1 GiB F32 checkpoint of 03-quantize.sh (16 tensors of 4096 x 4096, N(0, 1)); `scalpel quantize`
# as a whole process (median of 3 after a warm-up), with q8_0 and `cp` of the same file in the same run for
# scale, then the CPU time (user + system) of one more run of each. Target of issue 11: at least 2 GB/s
# file to file (F32 input bytes / median seconds, GB = 10^9 bytes).
# Environment: SCALPEL_BIN, PYTHON as in common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -x "$SCALPEL" ] || { echo "no scalpel binary at $SCALPEL (make build)"; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)"; exit 1; }
runs=3
DIR=$BENCH_DIR/quantize
IN=$DIR/in1g.safetensors
mkdir -p "$DIR"
if [ ! -f "$IN" ]; then
    echo "writing $IN (1 GiB)"
    "$PY" scripts/bench/synth_safetensors.py "$IN.partial" --tensors 16 --rows 4096 --cols 4096 --seed 3
    mv "$IN.partial" "$IN"
fi
line=$(machine_line)
in_bytes=$(stat -L -c %s "$IN")
flags_list=("int8" "int8 --format compressed-tensors" "int4" "int4 --asymmetric" "q8_0")
rows=()
for flags in "${flags_list[@]}"; do
    set -- $flags
    out=$DIR/out.safetensors; [[ $1 == q* ]] && out=$DIR/out.gguf
    echo "== $flags"
    t=$(timing --runs $runs --warmup 1 --prepare "rm -f '$out'" -- "$SCALPEL" quantize "$IN" "$out" --type "$@" --quiet)
    rm -f "$out"
    /usr/bin/time -f "%U %S" -o "$DIR/cpu.txt" "$SCALPEL" quantize "$IN" "$out" --type "$@" --quiet > /dev/null
    rm -f "$out"
    rows+=("$flags|$t|$(awk '{ printf "%.2f", $1 + $2 }' "$DIR/cpu.txt")")
done
echo "== cp"
c=$(timing --runs $runs --warmup 1 --prepare "rm -f '$DIR/copy.safetensors'" -- cp "$IN" "$DIR/copy.safetensors")
rm -f "$DIR/copy.safetensors"
load_after=$(cut -d' ' -f1 /proc/loadavg)

{
    echo "## int8 and int4 file to file (bitsandbytes, compressed-tensors)"
    echo
    echo "$line; load average $load_after at the end. The machine is shared with other jobs: medians of $runs runs"
    echo "after a warm-up, and the CPU time of one more run (which other jobs disturb less than wall time)."
    echo
    echo "Input: 1 GiB of F32 ($in_bytes bytes, 16 x [4096, 4096], \`synth_safetensors.py --seed 3\`);"
    echo "\`scalpel quantize in1g.safetensors OUT --type FLAGS --quiet\`. GB/s = input bytes / median (10^9)."
    echo
    echo "| \`--type\` | median | min | max | input GB/s | CPU seconds (user + sys) |"
    echo "|---|---:|---:|---:|---:|---:|"
    for r in "${rows[@]}"; do
        IFS='|' read -r flags t cpu <<<"$r"
        m=$(field median <<<"$t")
        echo "| \`$flags\` | $(human_seconds "$m") | $(human_seconds "$(field min <<<"$t")") | $(human_seconds "$(field max <<<"$t")") | $("$PY" -c "print(f'{$in_bytes / $m / 1e9:.2f}')") | $cpu |"
    done
    m=$(field median <<<"$c")
    echo "| \`cp\` (same file) | $(human_seconds "$m") | $(human_seconds "$(field min <<<"$c")") | $(human_seconds "$(field max <<<"$c")") | $("$PY" -c "print(f'{$in_bytes / $m / 1e9:.2f}')") | |"
    echo
    echo "Target of issue 11: int8 and int4 at least 2 GB/s file to file. Reproduce: \`swift build -c release\`,"
    echo "then \`bash scripts/bench.sh int-quant\`."
    echo
} > "$SECTIONS/09-int-quant.md"
cat "$SECTIONS/09-int-quant.md"
