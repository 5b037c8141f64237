#!/usr/bin/env bash
# Benchmark: `scalpel inspect` reads only the header, so a 4 GiB file takes as long as a 4 MiB one
# with the same tensors. Writes docs/bench/01-inspect.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
ensure_synthetic

runs=20
line=$(machine_line)
big=$(timing --runs $runs --warmup 3 -- "$SCALPEL" inspect "$BIG")
small=$(timing --runs $runs --warmup 3 -- "$SCALPEL" inspect "$SMALL")
big_med=$(field median <<<"$big"); small_med=$(field median <<<"$small")
tool=$(field tool <<<"$big")
ratio() { "$PY" -c 'import sys; print(f"{float(sys.argv[1])/float(sys.argv[2]):.2f}")' "$1" "$2"; }
row() { # label file json
    printf '| %s | %s | %s | %s | %s |\n' "$1" "$(stat -c %s "$2")" "$(human_seconds "$(field median <<<"$3")")" \
        "$(human_seconds "$(field min <<<"$3")")" "$(human_seconds "$(field max <<<"$3")")"
}
{
    echo "## inspect: header-only, 4 GiB vs 4 MiB"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $line. Timer: $tool, $runs runs after 3 warm-up runs, files in the page cache."
    echo
    echo "Both files hold the same 1024 F32 tensors (same header); only the data size differs."
    echo
    echo '```'
    echo "python scripts/bench/$BIG_CMD"
    echo "python scripts/bench/$SMALL_CMD"
    command_of "$big"
    command_of "$small"
    echo '```'
    echo
    echo "| file | bytes | median | min | max |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    row "big.safetensors (1024 x [1024, 1024] F32)" "$BIG" "$big"
    row "small.safetensors (1024 x [32, 32] F32)" "$SMALL" "$small"
    echo
    echo "Ratio big / small: **$(ratio "$big_med" "$small_med")** (medians), $(ratio "$(field min <<<"$big")" "$(field min <<<"$small")") (minimums, less sensitive to other load)."
    echo
} > "$SECTIONS/01-inspect.md"
cat "$SECTIONS/01-inspect.md"
