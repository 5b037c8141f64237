#!/usr/bin/env bash
# Benchmark of llama.cpp presets (not a test): writes docs/bench/08-presets.md.
#
# Q4_K_M of one GGUF file end to end, side by side in one run: `scalpel quantize IN OUT --type Q4_K_M`
# against llama.cpp's own `llama-quantize IN OUT Q4_K_M 2` (0c1e57098, built by scripts/llamacpp.sh), both
# with 2 threads (the machine's cores), median of 3 after a warm-up; then peak RSS (/usr/bin/time -v) of one
# more run of each, and the two outputs compared tensor by tensor (type and bytes).
# The input is a synthetic Llama-architecture GGUF (scripts/bench/synth_llama_gguf.py, F16, 8 layers,
# hidden 2048, ffn 5632, 16 heads / 4 KV heads, vocabulary 32000: about 1 GB).
# Environment: SCALPEL_BIN, PYTHON as in common.sh; LLAMACPP_BIN (default ~/.cache/scalpel/llamacpp-0.3.36/bin).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -x "$SCALPEL" ] || { echo "no scalpel binary at $SCALPEL (make build)"; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)"; exit 1; }
LLAMA_BIN=${LLAMACPP_BIN:-$HOME/.cache/scalpel/llamacpp-0.3.36/bin}
[ -x "$LLAMA_BIN/llama-quantize" ] || LLAMA_BIN=$(bash scripts/llamacpp.sh)
QUANTIZE=$LLAMA_BIN/llama-quantize
runs=3
DIR=$BENCH_DIR/presets
IN=$DIR/llama-f16.gguf
mkdir -p "$DIR"
if [ ! -f "$IN" ]; then
    echo "writing $IN"
    "$PY" scripts/bench/synth_llama_gguf.py "$IN.partial.gguf"
    mv "$IN.partial.gguf" "$IN"
fi
line=$(machine_line)
in_bytes=$(stat -c %s "$IN")

echo "== scalpel Q4_K_M"
s=$(timing --runs $runs --warmup 1 --prepare "rm -f '$DIR/scalpel.gguf'" -- "$SCALPEL" quantize "$IN" "$DIR/scalpel.gguf" --type Q4_K_M)
echo "== llama-quantize Q4_K_M"
l=$(timing --runs $runs --warmup 1 --prepare "rm -f '$DIR/llama.gguf'" -- "$QUANTIZE" "$IN" "$DIR/llama.gguf" Q4_K_M 2)

rss() { # OUTPUT CMD...: "wall_seconds peak_rss_kib"
    local out=$1; shift
    rm -f "$out"
    /usr/bin/time -v "$@" > /dev/null 2> "$DIR/timev.txt"
    "$PY" - "$DIR/timev.txt" <<'PYEOF'
import re, sys
text = open(sys.argv[1]).read()
h, m, s = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text).groups()
secs = int(h or 0) * 3600 + int(m) * 60 + float(s)
print(f"{secs:.2f}", re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
PYEOF
}
read -r s_wall s_rss <<<"$(rss "$DIR/scalpel.gguf" "$SCALPEL" quantize "$IN" "$DIR/scalpel.gguf" --type Q4_K_M)"
read -r l_wall l_rss <<<"$(rss "$DIR/llama.gguf" "$QUANTIZE" "$IN" "$DIR/llama.gguf" Q4_K_M 2)"

same=$("$PY" - "$DIR/scalpel.gguf" "$DIR/llama.gguf" <<'PYEOF'
import sys, gguf
a, b = (gguf.GGUFReader(p) for p in sys.argv[1:3])
ta = {t.name: (int(t.tensor_type), bytes(t.data.tobytes())) for t in a.tensors}
tb = {t.name: (int(t.tensor_type), bytes(t.data.tobytes())) for t in b.tensors}
diff = [n for n in tb if ta.get(n) != tb[n]]
print("all %d tensors identical (type and bytes)" % len(tb) if not diff and sorted(ta) == sorted(tb) else "DIFFERENT: %s" % diff[:5])
PYEOF
)

s_med=$(field median <<<"$s"); l_med=$(field median <<<"$l")
ratio=$("$PY" -c "print(f'{float(\"$l_med\") / float(\"$s_med\"):.2f}')")
{
    echo "## Presets: Q4_K_M of a GGUF file, scalpel vs llama-quantize"
    echo
    echo "$line. Input: $in_bytes bytes (synthetic Llama GGUF, F16; \`scripts/bench/synth_llama_gguf.py\`)."
    echo "Both with 2 threads; median of $runs after a warm-up. The machine may be shared: see the load average."
    echo
    echo "| command | median | min | max |"
    echo "|---|---|---|---|"
    for t in "$s" "$l"; do
        echo "| \`$(command_of "$t")\` | $(human_seconds "$(field median <<<"$t")") | $(human_seconds "$(field min <<<"$t")") | $(human_seconds "$(field max <<<"$t")") |"
    done
    echo
    echo "scalpel is **${ratio}x** llama-quantize's speed (target: at least 1.5x)."
    echo
    echo "| tool | wall (one run) | peak RSS |"
    echo "|---|---|---|"
    echo "| scalpel | ${s_wall} s | $((s_rss / 1024)) MiB |"
    echo "| llama-quantize | ${l_wall} s | $((l_rss / 1024)) MiB |"
    echo
    echo "Outputs: $same."
} > "$SECTIONS/08-presets.md"
cat "$SECTIONS/08-presets.md"
