#!/usr/bin/env bash
# Benchmark: `scalpel convert --dtype f16` on a 4 GiB F32 file against copying the same file.
# Writes docs/bench/02-convert.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_synthetic

runs=3
line=$(machine_line)
out=$BENCH_DIR/out.safetensors
copy=$BENCH_DIR/copy.safetensors
in_bytes=$(stat -c %s "$BIG")
convert=$(timing --runs $runs --warmup 1 --prepare "rm -f '$out'" -- "$SCALPEL" convert "$BIG" "$out" --dtype f16)
out_bytes=$(stat -c %s "$out")
cp_t=$(timing --runs $runs --warmup 1 --prepare "rm -f '$copy'" -- cp "$BIG" "$copy")
dd_t=$(timing --runs $runs --warmup 1 --prepare "rm -f '$copy'" -- dd if="$BIG" of="$copy" bs=16M conv=fsync status=none)
rm -f "$out" "$copy"
tool=$(field tool <<<"$convert")
gbps() { "$PY" -c 'import sys; print(f"{int(sys.argv[1])/float(sys.argv[2])/1e9:.2f}")' "$in_bytes" "$(field median <<<"$1")"; }
row() { # label json
    printf '| `%s` | %s | %s | %s | %s |\n' "$1" "$(human_seconds "$(field median <<<"$2")")" \
        "$(human_seconds "$(field min <<<"$2")")" "$(human_seconds "$(field max <<<"$2")")" "$(gbps "$2")"
}
{
    echo "## convert: F32 -> F16, 4 GiB, against cp"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $line. Timer: $tool, median of $runs runs after 1 warm-up run; the input is in the page cache, the output is removed before each run."
    echo
    echo "Input $in_bytes bytes (1024 x [1024, 1024] F32), F16 output $out_bytes bytes. GB/s = input bytes / median time (10^9 bytes)."
    echo "scalpel writes a temporary file and renames it into place (no fsync), like cp; dd conv=fsync also waits for the disk."
    echo
    echo '```'
    echo "python scripts/bench/$BIG_CMD"
    for t in "$convert" "$cp_t" "$dd_t"; do command_of "$t"; done
    echo '```'
    echo
    echo "| command | median | min | max | input GB/s |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    row "scalpel convert big.safetensors out.safetensors --dtype f16" "$convert"
    row "cp big.safetensors copy.safetensors" "$cp_t"
    row "dd if=big.safetensors of=copy.safetensors bs=16M conv=fsync" "$dd_t"
    echo
} > "$SECTIONS/02-convert.md"
cat "$SECTIONS/02-convert.md"
