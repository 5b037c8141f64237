#!/usr/bin/env bash
# Build llama.cpp (the test and benchmark oracle) from the PyPI sdist of llama-cpp-python, outside the repo.
#
#   bash scripts/llamacpp.sh          # builds once, then returns at once; prints the bin folder
#
# What it does (facts in docs/quantize.md and the shared oracle notes):
#   - `pip download llama-cpp-python==0.3.36 --no-deps --no-binary llama-cpp-python` (its sdist vendors
#     ggml-org/llama.cpp 0c1e57098 under vendor/llama.cpp), extracted into the cache;
#   - a venv inside the cache with CMake and Ninja from PyPI;
#   - a CPU-only Release build of llama-quantize, llama-imatrix, llama-simple, llama-embedding,
#     llama-export-lora (and ggml-base), -j2;
#   - our own C harness (scripts/ggml_quant_harness.c) linked against ggml-base, compiled with
#     -ffp-contract=off: it prints ggml's reference bytes and times ggml_quantize_chunk.
# Nothing of llama.cpp is copied into the repository. The cache is ${SCALPEL_CACHE:-$HOME/.cache/scalpel}.
set -euo pipefail

VERSION=0.3.36
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SCALPEL_CACHE:-$HOME/.cache/scalpel}"
ROOT="$CACHE/llamacpp-$VERSION"
BIN="$ROOT/bin"
SRC="$ROOT/src/llama_cpp_python-$VERSION/vendor/llama.cpp"
BUILD="$ROOT/build"
VENV="$ROOT/venv"
JOBS="${LLAMACPP_JOBS:-2}"
TARGETS=(llama-quantize llama-imatrix llama-simple llama-embedding llama-export-lora)
HARNESS_SRC="$HERE/ggml_quant_harness.c"
HARNESS="$BIN/ggml-quant-harness"

log() { echo "llamacpp.sh: $*" >&2; }

# The harness is rebuilt when its source is newer (it is ours and changes; the llama.cpp build does not).
build_harness() {
  if [[ -x "$HARNESS" && "$HARNESS" -nt "$HARNESS_SRC" ]]; then return 0; fi
  log "compiling the ggml harness"
  local libdir
  libdir="$(dirname "$(find "$BUILD" -name 'libggml-base.so' -print -quit)")"
  cc -O3 -ffp-contract=off -std=c11 -o "$HARNESS" "$HARNESS_SRC" \
    -I"$SRC/ggml/include" -L"$libdir" -lggml-base -Wl,-rpath,"$libdir" -lm -lpthread
}

done_marker="$ROOT/.built"
if [[ -f "$done_marker" ]]; then
  build_harness
  echo "$BIN"
  exit 0
fi

mkdir -p "$ROOT/dl" "$ROOT/src" "$BIN"

# 1. The sdist (source of llama-cpp-python only; its build tools come as wheels).
tarball="$(ls "$ROOT"/dl/llama_cpp_python-$VERSION.tar.gz 2>/dev/null || true)"
if [[ -z "$tarball" ]]; then
  log "downloading llama-cpp-python==$VERSION (sdist)"
  python3 -m pip download -q "llama-cpp-python==$VERSION" --no-deps --no-binary llama-cpp-python -d "$ROOT/dl"
  tarball="$ROOT/dl/llama_cpp_python-$VERSION.tar.gz"
fi
if [[ ! -d "$SRC" ]]; then
  log "extracting"
  tar -xzf "$tarball" -C "$ROOT/src"
fi

# 2. CMake and Ninja from PyPI, in a venv inside the cache.
if [[ ! -x "$VENV/bin/cmake" || ! -x "$VENV/bin/ninja" ]]; then
  log "creating the build venv (cmake, ninja)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check cmake ninja
fi
export PATH="$VENV/bin:$PATH"

# 3. CPU-only Release build.
log "configuring"
cmake -S "$SRC" -B "$BUILD" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=ON >"$ROOT/configure.log" 2>&1 \
  || { tail -30 "$ROOT/configure.log" >&2; exit 1; }
log "building ${TARGETS[*]} ggml-base (-j$JOBS; log: $ROOT/build.log)"
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}" ggml-base >"$ROOT/build.log" 2>&1 \
  || { tail -30 "$ROOT/build.log" >&2; exit 1; }

for t in "${TARGETS[@]}"; do ln -sf "$BUILD/bin/$t" "$BIN/$t"; done
ln -sf "$SRC/convert_hf_to_gguf.py" "$BIN/convert_hf_to_gguf.py"
ln -sfn "$SRC/gguf-py" "$BIN/gguf-py"

build_harness
touch "$done_marker"
echo "$BIN"
