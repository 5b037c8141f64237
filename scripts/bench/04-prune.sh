#!/usr/bin/env bash
# Benchmark of `scalpel prune` (not a test): writes docs/bench/04-prune.md.
#
#  1. --scope tensor --sparsity 0.5 on a 1 GiB F32 checkpoint (16 tensors of 4096 x 4096), side by side
#     with an exact NumPy np.partition reference (scripts/bench/prune_reference.py numpy) and, when torch is
#     importable, torch.nn.utils.prune.l1_unstructured: medians of 3 runs, whole process file to file
#     (both sides fsync their output). Once on disk and once in tmpfs (/dev/shm), where the disk is out
#     of the picture. The scalpel and NumPy outputs are compared tensor by tensor.
#  2. --scope global --sparsity 0.5 on a 4 GB checkpoint (60 tensors of 4096 x 4096) on disk, with peak
#     RSS from /usr/bin/time -v, and a check that exactly k weights went and that no removed |w| is
#     above a kept one.
#  3. For reference, one run of each other scope on the 1 GiB file (tmpfs).
#
# Needs about 11 GB of free disk and 4 GB of free memory for a moment; removes its files at the end.
# Environment: PYTHON (default .venv/bin/python, else /tmp/venvtest/bin/python), BENCH_DIR (default
# work/bench/prune), FAST_DIR (default /dev/shm/scalpel-bench-prune): a run-PID folder is made in each.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON=$REPO/.venv/bin/python; else PYTHON=/tmp/venvtest/bin/python; fi
fi
BENCH_DIR=${BENCH_DIR:-work/bench/prune}
FAST_DIR=${FAST_DIR:-/dev/shm/scalpel-bench-prune}
OUT_MD=docs/bench/04-prune.md
HELPER="$PYTHON $REPO/scripts/bench/prune_reference.py"

if [ ! -x /usr/bin/time ]; then
  echo "installing GNU time"; DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends time
fi
swift build -c release 2>&1 | tail -1
BIN=$REPO/.build/release/scalpel
# Private run folders (removed at exit), absolute because the timed commands run inside them.
BENCH_DIR=$(realpath -m "$BENCH_DIR/run-$$")
FAST_DIR=$(realpath -m "$FAST_DIR/run-$$")
mkdir -p "$BENCH_DIR" "$FAST_DIR" docs/bench
trap 'rm -rf "$FAST_DIR" "$BENCH_DIR"' EXIT

# time_runs LABEL DIR OUTPUT CMD...: runs CMD 3 times in DIR (OUTPUT removed before each run, outside
# the timing) and prints the median wall time and the median CPU time (user + system), in seconds.
time_runs() {
  local label=$1 dir=$2 output=$3; shift 3
  local walls=() cpus=()
  for i in 1 2 3; do
    rm -f "$dir/$output"
    sync
    /usr/bin/time -f "%e %U %S" -o "$dir/time.txt" "$@" > /dev/null
    read -r w u s < "$dir/time.txt"
    walls+=("$w")
    cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')")
  done
  echo "$label: wall ${walls[*]}; cpu ${cpus[*]}" >&2
  echo "$(printf "%s\n" "${walls[@]}" | sort -n | sed -n 2p) $(printf "%s\n" "${cpus[@]}" | sort -n | sed -n 2p)"
}

has_torch=0
$PYTHON -c "import torch" 2>/dev/null && has_torch=1

echo "== making the 1 GiB checkpoint"
$HELPER make "$BENCH_DIR/in1g.safetensors" 16 4096 4096 1
cp "$BENCH_DIR/in1g.safetensors" "$FAST_DIR/in1g.safetensors"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

declare -A T
for place in disk tmpfs; do
  dir=$BENCH_DIR; [ $place = tmpfs ] && dir=$FAST_DIR
  echo "== --scope tensor, 1 GiB, $place"
  ( cd "$dir"
    S=$(time_runs "scalpel prune, $place" "$dir" s.safetensors "$BIN" prune in1g.safetensors s.safetensors --sparsity 0.5)
    N=$(time_runs "numpy, $place" "$dir" n.safetensors $HELPER numpy in1g.safetensors n.safetensors 0.5)
    TT="- -"
    if [ $has_torch = 1 ]; then TT=$(time_runs "torch, $place" "$dir" t.safetensors $HELPER torch in1g.safetensors t.safetensors 0.5); fi
    C=$(time_runs "scalpel convert (copy), $place" "$dir" c.safetensors "$BIN" convert in1g.safetensors c.safetensors)
    $HELPER same s.safetensors n.safetensors && SAME=identical || SAME=DIFFERENT
    echo "$S $N $TT $C $SAME" > result.txt )
  read -r sw sc nw nc tw tc cw cc same < "$dir/result.txt"
  T[$place.sw]=$sw; T[$place.sc]=$sc; T[$place.nw]=$nw; T[$place.nc]=$nc; T[$place.tw]=$tw; T[$place.tc]=$tc
  T[$place.cw]=$cw; T[$place.cc]=$cc; T[$place.same]=$same
  rm -f "$dir"/n.safetensors "$dir"/t.safetensors "$dir"/c.safetensors
done

echo "== other scopes, 1 GiB, tmpfs (one run each)"
declare -A O
for args in "--scope row --sparsity 0.5" "--scope channel --sparsity 0.5" "--scope global --sparsity 0.5" "--pattern 2:4" "--pattern 4:8"; do
  rm -f "$FAST_DIR/o.safetensors"
  /usr/bin/time -f "%e %M" -o "$FAST_DIR/time.txt" "$BIN" prune "$FAST_DIR/in1g.safetensors" "$FAST_DIR/o.safetensors" $args --force > /dev/null
  O[$args]=$(cat "$FAST_DIR/time.txt")
done
rm -rf "$FAST_DIR"
rm -f "$BENCH_DIR"/in1g.safetensors "$BENCH_DIR"/s.safetensors

echo "== making the 4 GB checkpoint"
$HELPER make "$BENCH_DIR/in4g.safetensors" 60 4096 4096 2
echo "== --scope global, 4 GB, disk"
sync
/usr/bin/time -v "$BIN" prune "$BENCH_DIR/in4g.safetensors" "$BENCH_DIR/g.safetensors" --sparsity 0.5 --scope global \
  --report "$BENCH_DIR/g.json" > /dev/null 2> "$BENCH_DIR/timev.txt"
G_TIME=$(grep "Elapsed (wall clock)" "$BENCH_DIR/timev.txt" | awk '{print $NF}')
G_RSS=$(grep "Maximum resident set size" "$BENCH_DIR/timev.txt" | awk '{print $NF}')
G_CPU=$(awk -F': ' '/User time|System time/ { t += $2 } END { printf "%.2f", t }' "$BENCH_DIR/timev.txt")
G_CHECK=$($PYTHON - "$BENCH_DIR/in4g.safetensors" "$BENCH_DIR/g.safetensors" "$BENCH_DIR/g.json" <<'PY'
import json, sys
import numpy as np
from safetensors.numpy import safe_open
src, dst, report = sys.argv[1:]
removed_max, kept_min, zeroed, total = 0.0, np.inf, 0, 0
with safe_open(src, "np") as a, safe_open(dst, "np") as b:
    for name in a.keys():
        w, p = np.abs(a.get_tensor(name)).ravel(), b.get_tensor(name).ravel()
        gone = p == 0
        zeroed += int(gone.sum()); total += w.size
        if gone.any(): removed_max = max(removed_max, float(w[gone].max()))
        if (~gone).any(): kept_min = min(kept_min, float(w[~gone].min()))
k = round(0.5 * total)
r = json.load(open(report))["total"]
ok = zeroed == k == r["zeroed"] and removed_max <= kept_min
print(f"{'ok' if ok else 'FAILED'}: {zeroed:,} of {total:,} zeroed (k = {k:,}), largest removed |w| {removed_max:.9g} <= smallest kept {kept_min:.9g}")
PY
)
G_BYTES=$(stat -c %s "$BENCH_DIR/in4g.safetensors")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == "-" || a == 0) print "-"; else printf "%.1fx", b / a }'; }
{
  echo "# prune benchmark"
  echo
  echo "Generated by \`scripts/bench/04-prune.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC')."
  echo
  echo "Machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM, Linux $(uname -r); $(swift --version 2>&1 | head -1 | sed 's/^ *//'); NumPy $($PYTHON -c 'import numpy; print(numpy.__version__)'); torch $([ $has_torch = 1 ] && $PYTHON -c 'import torch; print(torch.__version__)' || echo 'not installed')."
  echo "Load average (1/5/15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER (the machine is shared)."
  echo
  echo "## --scope tensor, 1 GiB F32 (16 x 4096 x 4096), sparsity 0.5"
  echo
  echo "Whole process, input file to fsynced output file; medians of 3 runs, wall clock and CPU (user +"
  echo "system) in seconds. \"copy\" is \`scalpel convert\` of the same file with no change: the cost of"
  echo "mapping the input and writing 1 GiB, which every tool pays. Ratios are NumPy (or torch) / scalpel."
  echo
  echo "| where | scalpel prune wall | NumPy wall | ratio | torch wall | ratio | scalpel prune CPU | NumPy CPU | CPU ratio | copy wall | copy CPU | outputs |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
  for place in disk tmpfs; do
    echo "| $place | ${T[$place.sw]} | ${T[$place.nw]} | $(ratio "${T[$place.sw]}" "${T[$place.nw]}") | ${T[$place.tw]} | $(ratio "${T[$place.sw]}" "${T[$place.tw]}") | ${T[$place.sc]} | ${T[$place.nc]} | $(ratio "${T[$place.sc]}" "${T[$place.nc]}") | ${T[$place.cw]} | ${T[$place.cc]} | scalpel and NumPy ${T[$place.same]} |"
  done
  echo
  echo "Commands (in the data folder):"
  echo
  echo '```'
  echo "scalpel prune in1g.safetensors s.safetensors --sparsity 0.5"
  echo "python scripts/bench/prune_reference.py numpy in1g.safetensors n.safetensors 0.5"
  echo "scalpel convert in1g.safetensors c.safetensors   # copy"
  echo "python scripts/bench/prune_reference.py torch in1g.safetensors t.safetensors 0.5   # when torch is installed"
  echo '```'
  echo
  echo "## --scope global, $(awk -v b="$G_BYTES" 'BEGIN { printf "%.2f GB", b / 1e9 }') F32 (60 x 4096 x 4096), sparsity 0.5, on disk"
  echo
  echo "| wall clock | CPU (s) | peak RSS | check |"
  echo "|---:|---:|---:|---|"
  echo "| $G_TIME | $G_CPU | $(awk -v k="$G_RSS" 'BEGIN { printf "%.0f MiB", k / 1024 }') | $G_CHECK |"
  echo
  echo '```'
  echo "/usr/bin/time -v scalpel prune in4g.safetensors g.safetensors --sparsity 0.5 --scope global --report g.json"
  echo '```'
  echo
  echo "## Other scopes, 1 GiB F32, tmpfs, one run each"
  echo
  echo "| flags | wall clock (s) | peak RSS |"
  echo "|---|---:|---:|"
  for args in "--scope row --sparsity 0.5" "--scope channel --sparsity 0.5" "--scope global --sparsity 0.5" "--pattern 2:4" "--pattern 4:8"; do
    read -r t m <<< "${O[$args]}"
    echo "| \`$args\` | $t | $(awk -v k="$m" 'BEGIN { printf "%.0f MiB", k / 1024 }') |"
  done
} > "$OUT_MD"
echo "wrote $OUT_MD"
cat "$OUT_MD"
