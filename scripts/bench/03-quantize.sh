#!/usr/bin/env bash
# Benchmark of `scalpel quantize` (not a test): writes docs/bench/03-quantize.md.
#
#  1. One 1 GiB F32 checkpoint (16 tensors of 4096 x 4096, N(0, 1)), side by side in one run, three ways:
#     - kernel against kernel: scalpel's library quantizers (scalpel-kernel-bench: tensors in memory, each
#       call timed, summed over the tensors) against gguf-py's NumPy gguf.quants.quantize (q8_0, q4_0) and
#       bitsandbytes' CPU quantize_4bit (nf4), timed the same way by quantize_reference.py; also scalpel's
#       kernel with the round-trip error measured, as the CLI runs it, and a NumPy memory copy;
#     - file to file: the scalpel CLI (whole process, median of 3 after a warm-up) against each peer's own
#       file-to-file path (safetensors in, quantize, GGUFWriter / save_file out; imports not timed);
#     - the peers' bytes compared with scalpel's, the other types, CPU time and page faults.
#     bitsandbytes comes from BNB_PYTHON (default /tmp/venvbnb/bin/python) when it imports torch and
#     bitsandbytes; else the NumPy transcription of its algorithm (fixtures/bnb/make_bnb_vectors.py) stands
#     in, and the section says so.
#  2. Peak RSS (/usr/bin/time -v) of quantizing the 4 GiB checkpoint of common.sh to q4_0 (and nf4).
#
# Throughput = F32 input bytes / median seconds (GB = 10^9 bytes). Needs about 7 GB of free disk.
# Environment: SCALPEL_BIN, PYTHON as in common.sh; BNB_PYTHON.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -x "$SCALPEL" ] || { echo "no scalpel binary at $SCALPEL (make build)"; exit 1; }
KERNEL_BENCH=$(dirname "$SCALPEL")/scalpel-kernel-bench
[ -x "$KERNEL_BENCH" ] || { echo "no scalpel-kernel-bench at $KERNEL_BENCH (make build)"; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)"; exit 1; }
runs=3
DIR=$BENCH_DIR/quantize
IN=$DIR/in1g.safetensors
REF="$REPO/scripts/bench/quantize_reference.py"
mkdir -p "$DIR"
IN_ARGS="--tensors 16 --rows 4096 --cols 4096 --seed 3"
if [ ! -f "$IN" ]; then
    echo "writing $IN (1 GiB)"
    "$PY" scripts/bench/synth_safetensors.py "$IN.partial" $IN_ARGS
    mv "$IN.partial" "$IN"
fi
BNB_PY=${BNB_PYTHON:-/tmp/venvbnb/bin/python}
if [ -x "$BNB_PY" ] && "$BNB_PY" -c "import torch, bitsandbytes, safetensors" 2>/dev/null; then
    peer=bnb
    peer_label="bitsandbytes $("$BNB_PY" -c 'import bitsandbytes; print(bitsandbytes.__version__)' 2>/dev/null | tail -1) \`quantize_4bit\` (CPU, torch $("$BNB_PY" -c 'import torch; print(torch.__version__)' 2>/dev/null | tail -1))"
else
    peer=nf4-numpy
    BNB_PY=$PY
    peer_label="NumPy transcription of bitsandbytes' quantize_4bit (bitsandbytes is not importable here)"
fi

line=$(machine_line)
in_bytes=$(stat -c %s "$IN")
quant() { # TYPE OUTPUT [FLAGS...]: timing JSON of scalpel quantize IN OUTPUT --type TYPE
    local type=$1 out=$DIR/$2; shift 2
    timing --runs $runs --warmup 1 --prepare "rm -f '$out'" -- "$SCALPEL" quantize "$IN" "$out" --type "$type" "$@"
}
echo "== scalpel q8_0, q4_0, nf4"
s_q8=$(quant q8_0 q8_0.gguf)
s_q4=$(quant q4_0 q4_0.gguf)
s_nf4=$(quant nf4 nf4.safetensors)
# CPU time (user + system) and minor page faults of one more run of each: the machine is shared, and
# these do not depend on what else runs.
cpu() { # TYPE OUTPUT: "cpu_seconds minor_faults"
    rm -f "$DIR/$2"
    /usr/bin/time -f "%U %S %R" -o "$DIR/cpu.txt" "$SCALPEL" quantize "$IN" "$DIR/$2" --type "$1" --force > /dev/null
    awk '{ printf "%.2f %d", $1 + $2, $3 }' "$DIR/cpu.txt"
}
read -r c_q8 f_q8 <<<"$(cpu q8_0 q8_0.gguf)"
read -r c_q4 f_q4 <<<"$(cpu q4_0 q4_0.gguf)"
read -r c_nf4 f_nf4 <<<"$(cpu nf4 nf4.safetensors)"
/usr/bin/time -f "%U %S %R" -o "$DIR/cpu.txt" "$SCALPEL" convert "$IN" "$DIR/copy.safetensors" --force > /dev/null
read -r c_conv f_conv <<<"$(awk '{ printf "%.2f %d", $1 + $2, $3 }' "$DIR/cpu.txt")"
rm -f "$DIR/copy.safetensors"
echo "== scalpel kernels"
k_q8=$("$KERNEL_BENCH" "$IN" q8_0 $runs)
k_q8e=$("$KERNEL_BENCH" "$IN" q8_0+error $runs)
k_q4=$("$KERNEL_BENCH" "$IN" q4_0 $runs)
k_q4e=$("$KERNEL_BENCH" "$IN" q4_0+error $runs)
k_nf4=$("$KERNEL_BENCH" "$IN" nf4 $runs)
echo "== gguf-py"
p_q8=$("$PY" "$REF" gguf "$IN" q8_0 $runs "$DIR/q8_0.gguf")
p_q4=$("$PY" "$REF" gguf "$IN" q4_0 $runs "$DIR/q4_0.gguf")
f_q8p=$("$PY" "$REF" gguf-file "$IN" q8_0 $runs "$DIR/peer.gguf")
f_q4p=$("$PY" "$REF" gguf-file "$IN" q4_0 $runs "$DIR/peer.gguf")
echo "== $peer"
p_nf4=$("$BNB_PY" "$REF" $peer "$IN" $runs "$DIR/nf4.safetensors" 2>/dev/null | tail -1)
if [ $peer = bnb ]; then
    f_nf4p=$("$BNB_PY" "$REF" bnb-file "$IN" $runs "$DIR/peer.safetensors" 2>/dev/null | tail -1)
fi
echo "== copies"
p_copy=$("$PY" "$REF" copy "$IN" $runs)
cp_t=$(timing --runs $runs --warmup 1 --prepare "rm -f '$DIR/copy.safetensors'" -- cp "$IN" "$DIR/copy.safetensors")
rm -f "$DIR/copy.safetensors"
echo "== other types"
declare -A other
other_flags=("q4_1" "q5_0" "q5_1" "nf4 --double-quant" "fp4" "int8" "int8 --format compressed-tensors" "int4" "int4 --asymmetric")
for flags in "${other_flags[@]}"; do
    set -- $flags
    out=other.gguf; [[ $1 == q* ]] || out=other.safetensors
    other[$flags]=$(quant "$1" "$out" "${@:2}")
    rm -f "$DIR/$out"
done
out_bytes() { stat -c %s "$DIR/$1"; }
q8_bytes=$(out_bytes q8_0.gguf); q4_bytes=$(out_bytes q4_0.gguf); nf4_bytes=$(out_bytes nf4.safetensors)
rm -f "$DIR"/q8_0.gguf "$DIR"/q4_0.gguf "$DIR"/nf4.safetensors "$DIR"/peer.gguf "$DIR"/peer.safetensors

echo "== peak RSS on the 4 GiB checkpoint"
ensure_synthetic
big_bytes=$(stat -c %s "$BIG")
rss() { # OUTPUT FLAGS...: "wall_seconds peak_rss_kib" of scalpel quantize BIG OUTPUT FLAGS
    local out=$DIR/$1; shift
    rm -f "$out"
    /usr/bin/time -v "$SCALPEL" quantize "$BIG" "$out" "$@" --force > /dev/null 2> "$DIR/timev.txt"
    rm -f "$out"
    "$PY" - "$DIR/timev.txt" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
secs = 0.0
for part in re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1).split(":"):
    secs = secs * 60 + float(part)
print(f"{secs:.2f}", re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
EOF
}
read -r big_q4_wall big_q4_rss <<<"$(rss big-q4_0.gguf --type q4_0)"
read -r big_nf4_wall big_nf4_rss <<<"$(rss big-nf4.safetensors --type nf4)"
load_after=$(cut -d' ' -f1 /proc/loadavg)

num() { field "$2" <<<"$1"; }
gbps() { "$PY" -c 'import sys; print(f"{int(sys.argv[1]) / float(sys.argv[2]) / 1e9:.2f}")' "$1" "$2"; }
ratio() { "$PY" -c 'import sys; print(f"{float(sys.argv[2]) / float(sys.argv[1]):.2f}x")' "$1" "$2"; }
s_row() { # LABEL JSON OUTPUT_BYTES
    local m; m=$(num "$2" median)
    printf '| `%s` | %s | %s | %s | %s | %s |\n' "$1" "$(human_seconds "$m")" "$(human_seconds "$(num "$2" min)")" \
        "$(human_seconds "$(num "$2" max)")" "$(gbps "$in_bytes" "$m")" "$3"
}
p_row() { # LABEL JSON
    local m; m=$(num "$2" median)
    printf '| %s | %s | %s | %s | %s | |\n' "$1" "$(human_seconds "$m")" "$(human_seconds "$(num "$2" min)")" \
        "$(human_seconds "$(num "$2" max)")" "$(gbps "$in_bytes" "$m")"
}
same() { [ "$(num "$1" identical)" = True ] && echo "identical" || echo "DIFFERENT"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
{
    echo "## quantize: 1 GiB F32 to Q8_0, Q4_0 and NF4, against gguf-py, bitsandbytes and a memory copy"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $line; load average $load_after at the end (the machine is shared)."
    echo "Input: $in_bytes bytes, 16 tensors of [4096, 4096] F32 N(0, 1), in the page cache."
    echo
    echo "Kernel against kernel (the issue's measure): each side quantizes the same 16 tensors already in"
    echo "memory, one library call per tensor, the calls timed and summed; outputs allocated inside the calls."
    echo "scalpel: \`scalpel-kernel-bench\` (ScalpelKit's \`GGMLQuantize.quantize\` / \`FourBit.quantize\`, 2 threads);"
    echo "\`+error\` is \`GGMLQuantize.quantizeMeasuring\`, which also measures the round-trip error as the CLI does."
    echo "Peers: quantize_reference.py around gguf-py's and bitsandbytes' calls. Median of $runs runs each."
    echo
    echo '```'
    echo "python scripts/bench/synth_safetensors.py in1g.safetensors $IN_ARGS"
    for k in q8_0 q8_0+error q4_0 q4_0+error nf4; do echo ".build/release/scalpel-kernel-bench in1g.safetensors $k $runs"; done
    echo "python scripts/bench/quantize_reference.py gguf in1g.safetensors q8_0 $runs q8_0.gguf"
    echo "python scripts/bench/quantize_reference.py gguf in1g.safetensors q4_0 $runs q4_0.gguf"
    echo "python scripts/bench/quantize_reference.py $peer in1g.safetensors $runs nf4.safetensors"
    echo "python scripts/bench/quantize_reference.py copy in1g.safetensors $runs"
    echo '```'
    echo
    echo "| kernel | median | min | max | input GB/s |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    k_row() { # LABEL JSON
        local m; m=$(num "$2" median)
        printf '| %s | %s | %s | %s | %s |\n' "$1" "$(human_seconds "$m")" "$(human_seconds "$(num "$2" min)")" \
            "$(human_seconds "$(num "$2" max)")" "$(gbps "$in_bytes" "$m")"
    }
    k_row "scalpel \`GGMLQuantize.quantize(.q8_0)\`" "$k_q8"
    k_row "scalpel \`GGMLQuantize.quantizeMeasuring(.q8_0)\` (+error)" "$k_q8e"
    k_row "gguf-py \`gguf.quants.quantize(x, Q8_0)\`" "$p_q8"
    k_row "scalpel \`GGMLQuantize.quantize(.q4_0)\`" "$k_q4"
    k_row "scalpel \`GGMLQuantize.quantizeMeasuring(.q4_0)\` (+error)" "$k_q4e"
    k_row "gguf-py \`gguf.quants.quantize(x, Q4_0)\`" "$p_q4"
    k_row "scalpel \`FourBit.quantize(.nf4)\`" "$k_nf4"
    k_row "$peer_label" "$p_nf4"
    k_row "NumPy \`np.copyto\` of the same tensors (memory copy)" "$p_copy"
    echo
    echo "| | scalpel kernel / peer kernel | with the error measured / peer kernel | scalpel kernel / np.copyto | peer output vs scalpel's |"
    echo "| --- | ---: | ---: | ---: | --- |"
    for row in "q8_0|$k_q8|$k_q8e|$p_q8" "q4_0|$k_q4|$k_q4e|$p_q4" "nf4|$k_nf4||$p_nf4"; do
        IFS='|' read -r label k ke p <<<"$row"
        with_error="n/a"; [ -n "$ke" ] && with_error=$(ratio "$(num "$ke" median)" "$(num "$p" median)")
        printf '| %s | **%s** | %s | %s | %s |\n' "$label" "$(ratio "$(num "$k" median)" "$(num "$p" median)")" "$with_error" \
            "$(ratio "$(num "$k" median)" "$(num "$p_copy" median)")" "$(same "$p")"
    done
    echo
    echo "(Ratios are throughput ratios, higher is faster for scalpel; the copy column is a fraction of the speed"
    echo "of copying the same bytes in memory.)"
    echo
    echo "File to file: the scalpel CLI as a whole process (open, quantize, measure the error of every tensor,"
    echo "print the summary, write the output without fsync; median of $runs runs after 1 warm-up, the output removed"
    echo "before each) against each peer's own file-to-file path, timed from opening the input to closing the"
    echo "output (interpreter start and imports not counted), and \`cp\` of the input:"
    echo
    echo '```'
    for t in "$s_q8" "$s_q4" "$s_nf4"; do command_of "$t" | sed "s|work/bench/quantize/||g"; done
    echo "python scripts/bench/quantize_reference.py gguf-file in1g.safetensors q8_0 $runs peer.gguf"
    echo "python scripts/bench/quantize_reference.py gguf-file in1g.safetensors q4_0 $runs peer.gguf"
    if [ $peer = bnb ]; then echo "python scripts/bench/quantize_reference.py bnb-file in1g.safetensors $runs peer.safetensors"; fi
    command_of "$cp_t" | sed "s|work/bench/quantize/||g"
    echo '```'
    echo
    echo "| command | median | min | max | input GB/s | output bytes |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    s_row "scalpel quantize --type q8_0" "$s_q8" "$q8_bytes"
    p_row "gguf-py: safetensors -> \`quantize(Q8_0)\` -> GGUFWriter" "$f_q8p"
    s_row "scalpel quantize --type q4_0" "$s_q4" "$q4_bytes"
    p_row "gguf-py: safetensors -> \`quantize(Q4_0)\` -> GGUFWriter" "$f_q4p"
    s_row "scalpel quantize --type nf4" "$s_nf4" "$nf4_bytes"
    if [ $peer = bnb ]; then p_row "bitsandbytes: safetensors -> \`quantize_4bit\` -> save_file" "$f_nf4p"; fi
    s_row "cp in1g.safetensors copy.safetensors" "$cp_t" "$in_bytes"
    echo
    echo "| | scalpel CLI / peer file to file | scalpel CLI / peer kernel alone | scalpel CLI / cp |"
    echo "| --- | ---: | ---: | ---: |"
    nf4_file=n/a; if [ $peer = bnb ]; then nf4_file=$(ratio "$(num "$s_nf4" median)" "$(num "$f_nf4p" median)"); fi
    for row in "q8_0|$s_q8|$(ratio "$(num "$s_q8" median)" "$(num "$f_q8p" median)")|$p_q8" \
               "q4_0|$s_q4|$(ratio "$(num "$s_q4" median)" "$(num "$f_q4p" median)")|$p_q4" \
               "nf4|$s_nf4|$nf4_file|$p_nf4"; do
        IFS='|' read -r label s fr p <<<"$row"
        printf '| %s | **%s** | %s | %s |\n' "$label" "$fr" "$(ratio "$(num "$s" median)" "$(num "$p" median)")" \
            "$(ratio "$(num "$s" median)" "$(num "$cp_t" median)")"
    done
    echo
    verdict() { "$PY" -c 'import sys; print("met" if float(sys.argv[1]) >= float(sys.argv[2]) else "NOT met")' "$1" "$2"; }
    ten() { awk -v s="$(num "$1" median)" 'BEGIN { print 10 * s }'; }
    echo "Targets of issue 3, kernel against kernel: q8_0 at least 10x gguf-py: $(verdict "$(num "$p_q8" median)" "$(ten "$k_q8")"),"
    echo "q4_0: $(verdict "$(num "$p_q4" median)" "$(ten "$k_q4")"); nf4 at least 10x the peer: $(verdict "$(num "$p_nf4" median)" "$(ten "$k_nf4")");"
    echo "aim of 3 GB/s: $(gbps "$in_bytes" "$(num "$k_q8" median)") (q8_0) and $(gbps "$in_bytes" "$(num "$k_q4" median)") GB/s (q4_0) for the kernels,"
    echo "$(gbps "$in_bytes" "$(num "$s_q8" median)") and $(gbps "$in_bytes" "$(num "$s_q4" median)") GB/s for the CLI file to file; peak RSS under 1 GB: see the last table."
    echo
    echo "CPU time (user + system, both cores) and minor page faults of one more run of each, from"
    echo "\`/usr/bin/time\` (independent of the other work on the machine); \`scalpel convert\` of the same file (a"
    echo "plain copy through scalpel's reader and writer) for comparison:"
    echo
    echo "| command | CPU seconds | CPU-bound GB/s on 2 cores | minor page faults |"
    echo "| --- | ---: | ---: | ---: |"
    for row in "quantize --type q8_0|$c_q8|$f_q8" "quantize --type q4_0|$c_q4|$f_q4" "quantize --type nf4|$c_nf4|$f_nf4" \
               "convert (copy)|$c_conv|$f_conv"; do
        IFS='|' read -r label c f <<<"$row"
        printf '| `scalpel %s` | %s | %s | %s |\n' "$label" "$c" "$("$PY" -c 'import sys; print(f"{2 * int(sys.argv[1]) / float(sys.argv[2]) / 1e9:.2f}")' "$in_bytes" "$c")" "$f"
    done
    echo
    echo "Other types, same input and timing:"
    echo
    echo "| flags | median | input GB/s |"
    echo "| --- | ---: | ---: |"
    for flags in "${other_flags[@]}"; do
        printf '| `--type %s` | %s | %s |\n' "$flags" "$(human_seconds "$(num "${other[$flags]}" median)")" \
            "$(gbps "$in_bytes" "$(num "${other[$flags]}" median)")"
    done
    echo
    echo "Peak RSS quantizing the $(awk -v b="$big_bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }') checkpoint of common.sh (1024 tensors of [1024, 1024] F32), one run each:"
    echo
    echo '```'
    echo "python scripts/bench/$BIG_CMD"
    echo "/usr/bin/time -v scalpel quantize big.safetensors big-q4_0.gguf --type q4_0"
    echo "/usr/bin/time -v scalpel quantize big.safetensors big-nf4.safetensors --type nf4"
    echo '```'
    echo
    echo "| command | wall clock | peak RSS |"
    echo "| --- | ---: | ---: |"
    echo "| \`scalpel quantize --type q4_0\` | $big_q4_wall s | **$(mib "$big_q4_rss")** |"
    echo "| \`scalpel quantize --type nf4\` | $big_nf4_wall s | $(mib "$big_nf4_rss") |"
    echo
} > "$SECTIONS/03-quantize.md"
rm -rf "$DIR"
cat "$SECTIONS/03-quantize.md"
