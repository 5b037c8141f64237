#!/usr/bin/env bash
# A/B of two release builds of scalpel (not part of `make bench`): used once to check that removing
# `.unsafeFlags(["-O3"])` from Package.swift (CScalpelKernels then builds with SwiftPM's release -O2)
# costs no speed. See docs/bench/07-package-settings.md.
#
#   scripts/bench/package-settings-ab.sh DIR_A DIR_B IN.safetensors ROUNDS OUT.tsv
#
# DIR_A and DIR_B each hold `scalpel` and `scalpel-kernel-bench` (copies of .build/release). The two
# builds are run alternately, round after round, so that load from other processes on a shared
# machine falls on both alike. Per round and build: scalpel-kernel-bench (median of 3 calls) for
# q8_0+error and q4_0+error (they run the C error-sum kernel) and q8_0 (Swift only, the control), then
# the whole CLI: convert --dtype f16 (the C F16C kernel) and quantize --type q8_0 / q4_0. Rows of
# OUT.tsv: build, what, wall seconds, CPU seconds (user + system; "-" for the kernel rows).
set -euo pipefail
[ $# -eq 5 ] || { echo "usage: $0 DIR_A DIR_B IN.safetensors ROUNDS OUT.tsv" >&2; exit 2; }
A=$1 B=$2 IN=$3 rounds=$4 res=$5
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: > "$res"
run() { # LABEL WHAT COMMAND...: one timed run of a CLI command
    local label=$1 what=$2; shift 2
    /usr/bin/time -f "%e %U %S" -o "$tmp/t" "$@" > /dev/null
    read -r e u s < "$tmp/t"
    printf '%s\t%s\t%s\t%s\n' "$label" "$what" "$e" "$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')" >> "$res"
}
for r in $(seq "$rounds"); do
    for dir in "$A" "$B"; do
        label=$(basename "$dir")
        for k in q8_0+error q4_0+error q8_0; do
            m=$("$dir/scalpel-kernel-bench" "$IN" "$k" 3 | sed -n 's/.*"median": *\([0-9.e-]*\).*/\1/p')
            printf '%s\tkernel %s\t%s\t-\n' "$label" "$k" "$m" >> "$res"
        done
        rm -f "$tmp/o.safetensors"; run "$label" "convert --dtype f16" "$dir/scalpel" convert "$IN" "$tmp/o.safetensors" --dtype f16
        rm -f "$tmp/o.gguf"; run "$label" "quantize --type q8_0" "$dir/scalpel" quantize "$IN" "$tmp/o.gguf" --type q8_0
        rm -f "$tmp/o.gguf"; run "$label" "quantize --type q4_0" "$dir/scalpel" quantize "$IN" "$tmp/o.gguf" --type q4_0
    done
    echo "round $r of $rounds done" >&2
done
