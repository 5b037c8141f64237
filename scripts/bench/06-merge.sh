#!/usr/bin/env bash
# Benchmark: `scalpel merge` against a NumPy reference (safetensors.numpy load, W + s * B @ A in f32, save)
# on a 1B-parameter-shaped synthetic F16 base with TinyLlama's shapes (22 layers, hidden 2048,
# intermediate 5632, 4 KV heads, vocab 32000) and a rank-16 adapter on all 154 linear layers.
# Wall time and peak RSS from /usr/bin/time -v, side by side; writes docs/bench/06-merge.md.
# Needs about 7 GB of free disk (base, two outputs) and 4 GB of free memory (the reference holds the model).
#
# Usage: scripts/bench/06-merge.sh [RUNS]   (SCALPEL_BIN, PYTHON as in scripts/bench/common.sh)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
runs=${1:-3}
DIR=$BENCH_DIR/merge
BASE=$DIR/base.safetensors
ADAPTER=$DIR/adapter
mkdir -p "$DIR"
[ -x "$SCALPEL" ] || { echo "no scalpel binary at $SCALPEL (make build)"; exit 1; }
[ -x /usr/bin/time ] || { echo "/usr/bin/time is missing (apt-get install time)"; exit 1; }

GEN=$DIR/make_inputs.py
cat > "$GEN" <<'EOF'
"""Writes the synthetic F16 base (streamed, one tensor in memory at a time) and a rank-16 F32 PEFT adapter."""
import json, os, struct, sys
import numpy as np
from safetensors.numpy import save_file

base_path, adapter_dir = sys.argv[1:3]
layers, hidden, inter, kv, vocab, r = 22, 2048, 5632, 256, 32000, 16
linear = {"self_attn.q_proj": (hidden, hidden), "self_attn.k_proj": (kv, hidden), "self_attn.v_proj": (kv, hidden),
          "self_attn.o_proj": (hidden, hidden), "mlp.gate_proj": (inter, hidden), "mlp.up_proj": (inter, hidden),
          "mlp.down_proj": (hidden, inter)}
shapes = {"model.embed_tokens.weight": (vocab, hidden), "model.norm.weight": (hidden,), "lm_head.weight": (vocab, hidden)}
for i in range(layers):
    shapes[f"model.layers.{i}.input_layernorm.weight"] = (hidden,)
    shapes[f"model.layers.{i}.post_attention_layernorm.weight"] = (hidden,)
    for m, s in linear.items():
        shapes[f"model.layers.{i}.{m}.weight"] = s
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name in sorted(shapes):
    n = int(np.prod(shapes[name])) * 2
    header[name] = {"dtype": "F16", "shape": list(shapes[name]), "data_offsets": [offset, offset + n]}
    offset += n
text = json.dumps(header, separators=(",", ":")).encode()
text += b" " * ((8 - len(text) % 8) % 8)
rng = np.random.default_rng(0)
with open(base_path + ".partial", "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text)
    for name in sorted(shapes):
        f.write((rng.standard_normal(shapes[name], dtype=np.float32) * 0.02).astype(np.float16).tobytes())
os.replace(base_path + ".partial", base_path)

os.makedirs(adapter_dir, exist_ok=True)
tensors = {}
for i in range(layers):
    for m, (out_f, in_f) in linear.items():
        key = f"base_model.model.model.layers.{i}.{m}"
        tensors[key + ".lora_A.weight"] = (rng.standard_normal((r, in_f), dtype=np.float32) * 0.01)
        tensors[key + ".lora_B.weight"] = (rng.standard_normal((out_f, r), dtype=np.float32) * 0.01)
save_file(tensors, os.path.join(adapter_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
config = {"peft_type": "LORA", "r": r, "lora_alpha": 32, "target_modules": sorted(m.split(".")[1] for m in linear),
          "lora_dropout": 0.0, "bias": "none", "fan_in_fan_out": False, "task_type": "CAUSAL_LM"}
with open(os.path.join(adapter_dir, "adapter_config.json"), "w") as f:
    json.dump(config, f, indent=2)
EOF

REF=$DIR/numpy_merge.py
cat > "$REF" <<'EOF'
"""The reference merge: the whole model loaded with safetensors.numpy, W + s * B @ A in f32, saved."""
import json, sys
import numpy as np
from safetensors.numpy import load_file, save_file

base, adapter, out = sys.argv[1:4]
weights = load_file(base)
lora = load_file(adapter + "/adapter_model.safetensors")
config = json.load(open(adapter + "/adapter_config.json"))
scale = config["lora_alpha"] / config["r"]
for key, a in lora.items():
    if key.endswith(".lora_A.weight"):
        name = key[len("base_model.model."):-len(".lora_A.weight")] + ".weight"
        b = lora[key.replace(".lora_A.", ".lora_B.")]
        w = weights[name]
        weights[name] = (w.astype(np.float32) + scale * (b @ a)).astype(w.dtype)
save_file(weights, out, metadata={"format": "pt"})
EOF

if [ ! -f "$BASE" ] || [ ! -f "$ADAPTER/adapter_config.json" ]; then
    echo "writing $BASE (about 2.2 GB) and $ADAPTER"
    "$PY" "$GEN" "$BASE" "$ADAPTER"
fi

SCALPEL_CMD=("$SCALPEL" merge "$BASE" "$ADAPTER" -o "$DIR/scalpel.safetensors" --force)
NUMPY_CMD=("$PY" "$REF" "$BASE" "$ADAPTER" "$DIR/numpy.safetensors")

# Runs a command under /usr/bin/time -v; prints "wall_seconds max_rss_kib".
measure() {
    local log=$DIR/time.log
    /usr/bin/time -v "$@" > /dev/null 2> "$log"
    "$PY" - "$log" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
secs = 0.0
for part in wall.split(":"):
    secs = secs * 60 + float(part)
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
print(secs, rss)
EOF
}

scalpel_runs=(); numpy_runs=()
for i in $(seq 0 "$runs"); do  # run 0 warms the page cache and is not counted
    rm -f "$DIR/scalpel.safetensors" "$DIR/numpy.safetensors"
    s=$(measure "${SCALPEL_CMD[@]}")
    n=$(measure "${NUMPY_CMD[@]}")
    echo "run $i: scalpel $s | numpy $n (seconds, KiB)"
    if [ "$i" -gt 0 ]; then scalpel_runs+=("$s"); numpy_runs+=("$n"); fi
done

summary=$("$PY" - "$DIR/scalpel.safetensors" "$DIR/numpy.safetensors" "${#scalpel_runs[@]}" "${scalpel_runs[@]}" "${numpy_runs[@]}" <<'EOF'
import statistics, sys
import numpy as np
from safetensors import safe_open
a_path, b_path, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [tuple(map(float, r.split())) for r in sys.argv[4:]]
sc, nu = rows[:k], rows[k:]
med = lambda xs, j: statistics.median(x[j] for x in xs)
ts, tn, rs, rn = med(sc, 0), med(nu, 0), max(x[1] for x in sc), max(x[1] for x in nu)
# Agreement of the two outputs (both round an f32 result to F16 once).
diff_elems = total = 0
max_ulps = 0
with safe_open(a_path, "numpy") as fa, safe_open(b_path, "numpy") as fb:
    assert sorted(fa.keys()) == sorted(fb.keys())
    for name in fa.keys():
        x, y = fa.get_tensor(name), fb.get_tensor(name)
        assert x.dtype == y.dtype == np.float16 and x.shape == y.shape
        d = np.abs(x.view(np.int16).astype(np.int32) - y.view(np.int16).astype(np.int32))
        diff_elems += int((d != 0).sum()); total += d.size
        max_ulps = max(max_ulps, int(d.max()))
print(f"{ts:.2f} {min(x[0] for x in sc):.2f} {max(x[0] for x in sc):.2f} {rs/1024:.0f} "
      f"{tn:.2f} {min(x[0] for x in nu):.2f} {max(x[0] for x in nu):.2f} {rn/1024:.0f} {tn/ts:.1f} "
      f"{diff_elems} {total} {max_ulps}")
EOF
)
read -r ts ts_min ts_max rs tn tn_min tn_max rn ratio diff total ulps <<<"$summary"
base_bytes=$(stat -c %s "$BASE")
rm -f "$DIR/scalpel.safetensors" "$DIR/numpy.safetensors"
{
    echo "## merge: 1B-shaped F16 base + rank-16 adapter, scalpel vs NumPy"
    echo
    echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(machine_line)."
    echo "Each command ran $runs times after one warm-up round (inputs in the page cache, output removed first), alternating;"
    echo "wall time and peak RSS (maximum resident set size) from \`/usr/bin/time -v\`. The machine is shared, so times"
    echo "vary from run to run (min and max are shown); both tools are bound by reading and writing 2.2 GB."
    echo
    echo "Base: TinyLlama shapes (22 layers, hidden 2048, intermediate 5632, 4 KV heads, vocab 32000), F16, $base_bytes bytes,"
    echo "random N(0, 0.02). Adapter: PEFT folder, rank 16, lora_alpha 32, F32, on q/k/v/o/gate/up/down of every layer"
    echo "(154 modules). Both tools compute W + 2 * B @ A in f32 and write F16; the outputs differ in $diff of $total elements"
    echo "(at most $ulps F16 ulp: the two BLAS libraries sum the rank-16 products in different orders)."
    echo
    echo '```'
    echo "python $(basename "$DIR")/make_inputs.py base.safetensors adapter   # written by scripts/bench/06-merge.sh"
    echo "/usr/bin/time -v scalpel merge base.safetensors adapter -o scalpel.safetensors"
    echo "/usr/bin/time -v python numpy_merge.py base.safetensors adapter numpy.safetensors"
    echo '```'
    echo
    echo "| command | median | min | max | peak RSS |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| \`scalpel merge\` | $ts s | $ts_min s | $ts_max s | $rs MiB |"
    echo "| NumPy reference (load, W + s·B@A, save) | $tn s | $tn_min s | $tn_max s | $rn MiB |"
    echo
    echo "Speed-up (medians): **${ratio}x**; scalpel's peak RSS is **$rs MiB** against $rn MiB for the reference,"
    echo "which holds the whole model."
    echo
    echo "The reference script (numpy_merge.py):"
    echo
    echo '```python'
    cat "$REF"
    echo '```'
    echo
} > "$SECTIONS/06-merge.md"
cat "$SECTIONS/06-merge.md"
