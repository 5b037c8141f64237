#!/usr/bin/env bash
# Builds the libFuzzer targets (Fuzz/Targets/*.swift) and runs each for SECONDS seconds.
#
#   bash Fuzz/run.sh [SECONDS] [TARGET...]      (make fuzz SECONDS=N)
#
# SwiftPM cannot link a -sanitize=fuzzer product itself, so ScalpelKit is compiled by SwiftPM with
# coverage and AddressSanitizer instrumentation (--build-path .build/fuzz), and each target is linked
# from those objects with `swiftc -sanitize=fuzzer,address`. Seeds come from fixtures/ (written to
# .build/fuzz/corpus/TARGET, which keeps what the fuzzer finds between runs). A crash, leak or timeout
# leaves its input in .build/fuzz/findings/TARGET and makes the script exit 1; add every finding to
# fixtures/malformed/make_malformed.py. A summary line per target (executions, coverage) is printed
# and appended to .build/fuzz/runs.log.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=(SafetensorsHeader GGUF ZstdHeader PEFTConfig BnbQuantState); fi
[ -f Fuzz/Targets/PickleReader.swift ] && [ $# -eq 0 ] && TARGETS+=(PickleReader)

B=.build/fuzz
swift build --build-path "$B" --target ScalpelKit \
  -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address 2>&1 | grep -v "^\[" || true
test -f "$B/debug/Modules/ScalpelKit.swiftmodule" || { echo "fuzz: ScalpelKit did not build" >&2; exit 1; }
OBJECTS=("$B"/debug/ScalpelKit.build/*.o "$B"/debug/CScalpelKernels.build/*.o)
MODULE_FLAGS=(-I "$B/debug/Modules"
  -Xcc -fmodule-map-file="$B/debug/CScalpelKernels.build/module.modulemap" -Xcc -I -Xcc Sources/CScalpelKernels/include
  -Xcc -fmodule-map-file=Sources/CZstd/module.modulemap -Xcc -fmodule-map-file=Sources/CBLAS/module.modulemap)

python3 - "$B/corpus" <<'PY'
import glob, json, os, struct, sys
root = sys.argv[1]
def seed(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name.replace("/", "_")), "wb") as f: f.write(data)
small = lambda p: os.path.getsize(p) <= 1 << 20
for p in glob.glob("fixtures/**/*.safetensors", recursive=True):
    if small(p): seed("SafetensorsHeader", p, b"\0" + open(p, "rb").read()); seed("ZstdHeader", p, b"\1" + open(p, "rb").read())
for p in glob.glob("fixtures/**/*.index.json", recursive=True):
    seed("SafetensorsHeader", p, b"\1" + open(p, "rb").read())
seed("SafetensorsHeader", "index", b'\1{"metadata":{"total_size":32},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}')
for p in glob.glob("fixtures/**/*.gguf", recursive=True):
    if small(p): seed("GGUF", p, open(p, "rb").read()); seed("ZstdHeader", p, b"\1" + open(p, "rb").read())
for p in glob.glob("fixtures/**/*.zst", recursive=True):
    seed("ZstdHeader", p, b"\0" + open(p, "rb").read())
for p in glob.glob("fixtures/**/adapter_config.json", recursive=True):
    seed("PEFTConfig", p, open(p, "rb").read())
for i, state in enumerate([
        {"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [64, 1]},
        {"quant_type": "fp4", "blocksize": 64, "dtype": "float16", "shape": [64, 1], "nested_blocksize": 256,
         "nested_dtype": "float32", "nested_offset": 0.5}]):
    seed("BnbQuantState", f"state{i}", json.dumps(state).encode())
for p in glob.glob("fixtures/**/*.pkl", recursive=True) + glob.glob("fixtures/**/*.bin", recursive=True) + glob.glob("fixtures/**/*.pt", recursive=True):
    if small(p): seed("PickleReader", p, open(p, "rb").read())
PY

status=0
for t in "${TARGETS[@]}"; do
  exe="$B/fuzz-$t"
  rm -f "$exe"
  swiftc -sanitize=fuzzer,address -parse-as-library -g "${MODULE_FLAGS[@]}" "Fuzz/Targets/$t.swift" "${OBJECTS[@]}" \
    -lzstd -lopenblas -llapacke -o "$exe" 2>&1 | grep -v "Cannot export local symbol" || true
  test -x "$exe" || { echo "fuzz: cannot link $t" >&2; exit 1; }
  mkdir -p "$B/corpus/$t" "$B/findings/$t"
  log="$B/fuzz-$t.log"
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 "$exe" "$B/corpus/$t" -max_total_time="$SECONDS_PER_TARGET" \
    -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=65536 -artifact_prefix="$B/findings/$t/" -print_final_stats=1 \
    > "$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
  line="$(date -u +%Y-%m-%dT%H:%MZ) $t: ${runs} executions in ${SECONDS_PER_TARGET} s, coverage ${cov}, exit ${rc}"
  echo "fuzz: $line"
  echo "$line" >> "$B/runs.log"
  if [ $rc -ne 0 ]; then
    status=1
    echo "fuzz: $t FAILED; the input is in $B/findings/$t/; the end of its log:" >&2
    tail -40 "$log" >&2
  fi
done
exit $status
