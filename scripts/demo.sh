#!/usr/bin/env bash
# A short tour of scalpel on the real all-MiniLM-L6-v2 checkpoint (`make demo` fetches it first).
# Linear on purpose: later steps (quantize, prune, extract-lora, ...) are appended at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SCALPEL=${SCALPEL_BIN:-.build/release/scalpel}
MODEL=${SCALPEL_MODEL:-work/models/all-MiniLM-L6-v2/model.safetensors}
OUT=work/demo
PY=.venv/bin/python
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
