#!/usr/bin/env bash
# A short tour of scalpel on the real all-MiniLM-L6-v2 checkpoint (`make demo` fetches it first).
# Linear on purpose: later steps (quantize, prune, extract-lora, ...) are appended at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCALPEL=${SCALPEL_BIN:-.build/release/scalpel}
MODEL=${SCALPEL_MODEL:-work/models/all-MiniLM-L6-v2/model.safetensors}
OUT=work/demo
PY=.venv/bin/python
rm -rf "$OUT"  # a fresh folder: outputs are never replaced without --force
mkdir -p "$OUT"

# Prints a command (arguments with shell characters in single quotes), then runs it.
show() {
    local out="" a
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./=:,+-]+$ ]]; then out+="$a "; else out+="'$a' "; fi
    done
    printf '\n$ %s\n' "${out% }"
}
run() {
    show "$@"
    "$@"
}

echo "== inspect: the human summary"
run "$SCALPEL" inspect "$MODEL"

echo
echo "== inspect: a few tensors with statistics"
run "$SCALPEL" inspect "$MODEL" --filter 'encoder.layer.0.attention.self.*' --stats

echo
echo "== inspect --json: a few keys"
printf '\n$ %s\n' "$SCALPEL inspect $MODEL --json > $OUT/inspect.json"
"$SCALPEL" inspect "$MODEL" --json > "$OUT/inspect.json"
"$PY" - "$OUT/inspect.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
for key in ("format", "tensor_count", "parameter_count", "file_bytes", "data_bytes", "bits_per_parameter", "by_dtype"):
    print(f"{key}: {json.dumps(r[key])}")
PYEOF

echo
echo "== quantize: GGUF Q8_0 and Q4_0 (blocks byte-identical to ggml's reference quantizers)"
MODEL_DIR=$(dirname "$MODEL")
rm -rf "$OUT/minilm-q8_0.gguf" "$OUT/minilm-q4_0.gguf" "$OUT/minilm-nf4" "$OUT/minilm-int4" "$OUT/minilm-nf4-f32" "$OUT/q4_0.json"
run "$SCALPEL" quantize "$MODEL" "$OUT/minilm-q8_0.gguf" --type q8_0
run "$SCALPEL" quantize "$MODEL" "$OUT/minilm-q4_0.gguf" --type q4_0 --report "$OUT/q4_0.json"
printf '\n# %s\n' "gguf-py reads both files:"
"$PY" - "$OUT/minilm-q8_0.gguf" "$OUT/minilm-q4_0.gguf" <<'PYEOF'
import collections, sys
import gguf
for path in sys.argv[1:]:
    r = gguf.GGUFReader(path)
    types = collections.Counter(t.tensor_type.name for t in r.tensors)
    meta = {k: r.fields[k].contents() for k in ("general.file_type", "general.quantization_version")}
    print(f"{path}: {len(r.tensors)} tensors {dict(types)}, {meta}")
PYEOF

echo
echo "== the Hugging Face folder to llama.cpp's Q4_K_M in one command (its tensor rules; size known beforehand)"
show "$SCALPEL" inspect "$MODEL_DIR" --estimate Q4_K_M
"$SCALPEL" inspect "$MODEL_DIR" --estimate Q4_K_M | tail -5
run "$SCALPEL" quantize "$MODEL_DIR" "$OUT/minilm-Q4_K_M.gguf" --type Q4_K_M
EMBED="$HOME/.cache/scalpel/llamacpp-0.3.36/bin/llama-embedding"
if [ -x "$EMBED" ]; then  # built by `make llamacpp` (make test builds it): llama.cpp runs the file
    show "$EMBED" -m "$OUT/minilm-Q4_K_M.gguf" -p "A scalpel cuts checkpoints."
    "$EMBED" -m "$OUT/minilm-Q4_K_M.gguf" -p "A scalpel cuts checkpoints." -t 2 2>/dev/null | grep -m1 "^embedding" | cut -c1-100 || true
fi
run "$SCALPEL" diff "$MODEL" "$OUT/minilm-q8_0.gguf" --limit 3

echo
echo "== quantize: bitsandbytes NF4 with double quantization, model folder to model folder"
run "$SCALPEL" quantize "$MODEL_DIR" "$OUT/minilm-nf4" --type nf4 --double-quant
run ls "$OUT/minilm-nf4"
printf '\n# %s\n' "quantization_config in $OUT/minilm-nf4/config.json, and one weight's tensors as bitsandbytes saves them:"
"$PY" - "$OUT/minilm-nf4" <<'PYEOF'
import json, sys
from safetensors import safe_open
folder = sys.argv[1]
print(json.dumps(json.load(open(folder + "/config.json"))["quantization_config"]))
with safe_open(folder + "/model.safetensors", "np") as f:
    name = "encoder.layer.0.attention.self.query.weight"
    for key in sorted(k for k in f.keys() if k.startswith(name)):
        t = f.get_slice(key)
        print(f"{key}: {t.get_dtype()} {t.get_shape()}")
    print(bytes(f.get_tensor(name + ".quant_state.bitsandbytes__nf4")).decode())
PYEOF

echo
echo "== quantize: compressed-tensors int4 (W4A16, group 128), the layout vLLM loads"
run "$SCALPEL" quantize "$MODEL_DIR" "$OUT/minilm-int4" --type int4 --group-size 128

echo
echo "== dequantize: back to plain F32 (quantization_config removed from the copied config.json)"
run "$SCALPEL" dequantize "$OUT/minilm-nf4" "$OUT/minilm-nf4-f32" --dtype f32

echo
echo "== extract-lora: a LoRA from a full fine-tune (the model against a perturbed copy of itself)"
rm -rf "$OUT/minilm-tuned.safetensors" "$OUT/minilm-lora" "$OUT/minilm-lora-merged.safetensors"
printf '\n# %s\n' "a stand-in fine-tune: each encoder linear weight W + rank-8 update (5% of ||W||, decaying spectrum) + noise (0.5%)"
"$PY" - "$MODEL" "$OUT/minilm-tuned.safetensors" <<'PYEOF'
import sys
import numpy as np
from safetensors.numpy import load_file, save_file
src, dst = sys.argv[1:3]
weights = load_file(src)
rng = np.random.default_rng(0)
changed = 0
for name in sorted(weights):
    w = weights[name]
    if not (name.startswith("encoder.layer.") and name.endswith(".weight") and w.ndim == 2):
        continue
    m, n = w.shape
    norm = np.linalg.norm(w.astype(np.float64))
    s = 0.7 ** np.arange(8)
    s *= 0.05 * norm / np.linalg.norm(s)
    u, v = np.linalg.qr(rng.standard_normal((m, 8)))[0], np.linalg.qr(rng.standard_normal((n, 8)))[0]
    d = (u * s) @ v.T + (0.005 * norm / np.sqrt(m * n)) * rng.standard_normal((m, n))
    weights[name] = (w + d).astype(w.dtype)
    changed += 1
save_file(weights, dst, metadata={"format": "pt"})
print(f"{dst}: {changed} linear weights changed, the other {len(weights) - changed} tensors identical")
PYEOF
run "$SCALPEL" extract-lora --base "$MODEL" --tuned "$OUT/minilm-tuned.safetensors" -o "$OUT/minilm-lora" --rank 16 --base-id sentence-transformers/all-MiniLM-L6-v2
printf '\n# %s\n' "the PEFT adapter folder:"
"$PY" - "$OUT/minilm-lora" <<'PYEOF'
import json, sys
from safetensors import safe_open
folder = sys.argv[1]
config = json.load(open(folder + "/adapter_config.json"))
print({k: config[k] for k in ("peft_type", "r", "lora_alpha", "base_model_name_or_path", "rank_pattern")})
targets = config["target_modules"]
# Full module paths: pooler.dense is unchanged, so the leaf name "dense" would also target it.
print(f"target_modules: {len(targets)} paths, {targets[:2]} ...")
with safe_open(folder + "/adapter_model.safetensors", "np") as f:
    keys = sorted(f.keys())
    for key in keys[:2]:
        print(f"{key}: {f.get_slice(key).get_dtype()} {f.get_slice(key).get_shape()}")
    print(f"... {len(keys)} tensors")
PYEOF
run "$SCALPEL" merge "$MODEL" "$OUT/minilm-lora" -o "$OUT/minilm-lora-merged.safetensors"
printf '\n# %s\n' "reconstruction: base + LoRA (merged by scalpel) against the perturbed copy, and the best rank 16 can do (numpy SVD):"
"$PY" - "$MODEL" "$OUT/minilm-tuned.safetensors" "$OUT/minilm-lora-merged.safetensors" <<'PYEOF'
import sys
import numpy as np
from safetensors.numpy import load_file
base, tuned, merged = (load_file(p) for p in sys.argv[1:4])
errors, ratios, worst_other = [], [], 0.0
for name in sorted(base):
    d = tuned[name].astype(np.float64) - base[name].astype(np.float64)
    got = merged[name].astype(np.float64) - base[name].astype(np.float64)
    if not d.any():
        worst_other = max(worst_other, float(np.abs(got).max()))
        continue
    s = np.linalg.svd(d, compute_uv=False)
    err = np.linalg.norm(got - d) / np.linalg.norm(d)
    optimal = np.sqrt((s[16:] ** 2).sum() / (s ** 2).sum())
    errors.append(err)
    ratios.append(err / optimal)
print(f"{len(errors)} changed tensors: relative error of the difference mean {np.mean(errors):.4f}, "
      f"max {np.max(errors):.4f}; scalpel / optimal rank-16 error: max {np.max(ratios):.5f}")
print(f"unchanged tensors: largest change after the merge {worst_other}")
PYEOF

echo
echo "== stack: two copies of the extracted LoRA at weight 0.5 each, concatenated (exact: same delta as one copy)"
run "$SCALPEL" stack "$OUT/minilm-lora:0.5" "$OUT/minilm-lora:0.5" -o "$OUT/minilm-lora-stacked" --method cat
run "$SCALPEL" inspect "$OUT/minilm-lora-stacked"

echo
echo "== convert: to GGUF in F16, to shards, and zstd-compressed"
run "$SCALPEL" convert "$MODEL" "$OUT/minilm-f16.gguf" --dtype f16 --arch bert
run "$SCALPEL" convert "$MODEL" "$OUT/minilm-shards" --shard-size 40MB
run ls "$OUT/minilm-shards"
run "$SCALPEL" convert "$MODEL" "$OUT/minilm.safetensors.zst" --zstd-level 19

echo
echo "== prune: 50% per tensor and 2:4, written zstd-compressed; the zeros compress"
run "$SCALPEL" prune "$MODEL" "$OUT/minilm-pruned50.safetensors.zst" --sparsity 0.5 --zstd-level 19 --json --report "$OUT/prune50.json" > /dev/null
"$PY" - "$OUT/prune50.json" <<'PYEOF'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["total"]
print("total:", {k: t[k] for k in t if k in ("target_sparsity", "achieved_sparsity", "zeroed", "norm_removed_fraction")})
PYEOF
run "$SCALPEL" prune "$MODEL" "$OUT/minilm-2of4.safetensors.zst" --pattern 2:4 --zstd-level 19 --json > /dev/null
run "$SCALPEL" inspect "$OUT/minilm-pruned50.safetensors.zst" --stats --filter 'encoder.layer.0.attention.self.query.weight'
printf '\n# %s\n' "compressed sizes (zstd -19): dense vs pruned"
ls -l "$OUT/minilm.safetensors.zst" "$OUT/minilm-pruned50.safetensors.zst" "$OUT/minilm-2of4.safetensors.zst" | awk '{printf "%12d  %s\n", $5, $9}'

echo
echo "demo done: outputs are in $OUT"
