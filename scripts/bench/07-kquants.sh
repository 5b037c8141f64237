#!/usr/bin/env bash
# Benchmark of the K-quant kernels (not a test): writes docs/bench/07-kquants.md.
#
# Each K type, without and with importance weights, in memory, side by side in one run at the same thread
# count: ggml's C quantizer (`ggml_quantize_chunk` of the llama.cpp vendored by llama-cpp-python 0.3.36,
# called by our harness scripts/ggml_quant_harness.c over THREADS contiguous row ranges, one pthread each,
# as llama-quantize does) against Scalpel's `KQuant.quantize` (`scalpel-kernel-bench kquant`). Both
# generate the same matrix (xorshift64*, uniform in [-1, 1)), time REPEATS calls and report the median;
# the FNV-1a hash of the output bytes must be the same, or the script fails.
#
# Environment: SCALPEL_BIN, PYTHON as in common.sh; KQ_ROWS (default 1024) x KQ_COLS (4096) values;
# KQ_THREADS (default: nproc); KQ_REPEATS (3). The oracle is built (once) by scripts/llamacpp.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
KERNEL_BENCH=$(dirname "$SCALPEL")/scalpel-kernel-bench
[ -x "$KERNEL_BENCH" ] || { echo "no scalpel-kernel-bench at $KERNEL_BENCH (make build)"; exit 1; }
LLAMA_BIN=${SCALPEL_LLAMACPP:-$(bash "$REPO/scripts/llamacpp.sh")}
HARNESS=$LLAMA_BIN/ggml-quant-harness
[ -x "$HARNESS" ] || { echo "no ggml harness at $HARNESS (bash scripts/llamacpp.sh)"; exit 1; }
rows=${KQ_ROWS:-1024}
cols=${KQ_COLS:-4096}
threads=${KQ_THREADS:-$(nproc)}
repeats=${KQ_REPEATS:-3}
DIR=$BENCH_DIR/kquants
mkdir -p "$DIR"
# Importance weights: a fixed positive pattern per column (what an imatrix holds: mean squared activations).
"$PY" -c 'import numpy as np, sys; n = int(sys.argv[1]); (0.05 + np.abs(np.sin(np.arange(n) * 0.37)) ** 2).astype(np.float32).tofile(sys.argv[2])' \
    "$cols" "$DIR/imatrix.f32"

line=$(machine_line)
results=()
for t in q2_K q3_K q4_K q5_K q6_K; do
    for weighted in no yes; do
        extra=(); [ $weighted = yes ] && extra=(- "$DIR/imatrix.f32")
        echo "== $t imatrix=$weighted"
        g=$("$HARNESS" bench $t "$rows" "$cols" "$threads" "$repeats" "${extra[@]}")
        s=$("$KERNEL_BENCH" kquant $t "$rows" "$cols" "$threads" "$repeats" "${extra[@]}")
        echo "ggml    $g"
        echo "scalpel $s"
        results+=("$t|$weighted|$g|$s")
    done
done
load_after=$(cut -d' ' -f1 /proc/loadavg)

"$PY" - "$rows" "$cols" "$threads" "$repeats" "$line" "$load_after" "${results[@]}" > "$SECTIONS/07-kquants.md" <<'EOF'
import json, sys
rows, cols, threads, repeats, line, load_after = sys.argv[1:7]
out = ["## K-quants in memory: Scalpel against ggml's C", "",
       f"{line}; load average {load_after} at the end. The machine is shared: medians of {repeats} runs.", "",
       f"A {rows} x {cols} F32 matrix ({int(rows) * int(cols) * 4 / 2**20:.0f} MiB) quantized in memory at {threads} threads by ggml's "
       "`ggml_quantize_chunk` (llama.cpp vendored by llama-cpp-python 0.3.36, ggml-base built by scripts/llamacpp.sh: "
       "`-O3`, no `-march`) and by Scalpel's `KQuant.quantize` (`scalpel-kernel-bench kquant`). "
       "\"same bytes\": the FNV-1a hashes of the two outputs are equal.", "",
       "| type | imatrix | ggml C | Scalpel | speed-up | ggml MB/s | Scalpel MB/s | same bytes |",
       "|---|---|---|---|---|---|---|---|"]
bad = []
for r in sys.argv[7:]:
    t, w, g, s = r.split("|", 3)
    g, s = json.loads(g), json.loads(s)
    same = g["fnv1a"] == s["fnv1a"]
    if not same:
        bad.append(f"{t} imatrix={w}")
    mb = int(rows) * int(cols) * 4 / 1e6
    out.append(f"| {t.upper()} | {w} | {g['median_s']:.3f} s | {s['median_s']:.3f} s | {g['median_s'] / s['median_s']:.2f}x "
               f"| {mb / g['median_s']:.1f} | {mb / s['median_s']:.1f} | {'yes' if same else 'NO'} |")
out += ["", "Reproduce: `bash scripts/llamacpp.sh` (once), `swift build -c release`, then "
        "`bash scripts/bench.sh kquants` (KQ_ROWS, KQ_COLS, KQ_THREADS, KQ_REPEATS to change the run).", ""]
print("\n".join(out))
if bad:
    sys.exit("bytes differ from ggml: " + ", ".join(bad))
EOF
cat "$SECTIONS/07-kquants.md"
