# tumorseg: `make demo` and `make test` set everything up themselves on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ARGS    ?=
DEMO_DIR = outputs/demo/$(shell date +%Y-%m-%d_%H-%M-%S)

.PHONY: help install web-vendor wheel demo test test-tools test-fast fuzz lint train sweep tensorboard data bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	# torch first: the CPU build (a bare `torch` requirement would pull a multi-GB CUDA build)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,mlflow]'
	touch $(STAMP)

install: $(STAMP) web-vendor test-tools  ## create .venv with torch (CPU) and tumorseg[dev,mlflow]; the browser page's npm files

# The browser page's third-party files (tumorseg export format=web) come from the npm registry, pinned by
# package-lock.json: `npm ci` again only when the lock changed; then the few files the page loads are copied into
# package data (tumorseg/web/vendor/, git-ignored), so a wheel exports a working page without node. onnxruntime-web's
# WASM build (threads + SIMD) without its WebGPU/WebGL builds; NiiVue's one-file ESM bundle; dcm2niix's JPEG-capable
# WASM build for DICOM series. About 19 MB of the packages' 170 MB.
NPM_STAMP := node_modules/.installed
VENDOR    := tumorseg/web/vendor
VENDOR_FILES = onnxruntime-web/dist/ort.wasm.min.mjs onnxruntime-web/dist/ort-wasm-simd-threaded.mjs \
  onnxruntime-web/dist/ort-wasm-simd-threaded.wasm @niivue/niivue/dist/index.js \
  @niivue/dcm2niix/dist/index.jpeg.js @niivue/dcm2niix/dist/worker.jpeg.js @niivue/dcm2niix/dist/dcm2niix.jpeg.js \
  @niivue/dcm2niix/dist/dcm2niix.jpeg.wasm

$(NPM_STAMP): package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $(NPM_STAMP)

$(VENDOR)/.copied: $(NPM_STAMP)
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/onnxruntime-web $(VENDOR)/niivue $(VENDOR)/dcm2niix
	for f in $(VENDOR_FILES); do d=$${f#@niivue/}; cp node_modules/$$f $(VENDOR)/$${d%%/*}/; done
	touch $@

web-vendor: $(VENDOR)/.copied  ## npm ci (when package-lock.json changed) and copy the browser page's files into package data

wheel: $(STAMP) web-vendor  ## dist/tumorseg-*.whl, the browser page's npm files inside (exports a page with no node)
	$(BIN)/pip wheel . -w dist --no-deps --no-build-isolation --quiet

demo: $(STAMP)  ## train on the embedded phantom data (both approaches), report, evaluate, predict; then the shipped model on slices and on a CT volume
	$(eval DIR := $(DEMO_DIR))
	# the default recipe without its augmentation (augment=all made the epochs ~1.7x longer here: loading is in-process)
	$(BIN)/python -m tumorseg.train -m data=phantom approach=split,full trainer.max_epochs=12 augment=none \
	  hydra.sweep.dir=$(DIR) $(ARGS)
	$(BIN)/python -m tumorseg.report runs=$(DIR)
	$(BIN)/python -m tumorseg.evaluate ckpt_path=$$(ls $(DIR)/1/checkpoints/epoch_*.ckpt) \
	  data_dir=data/phantom/val hydra.run.dir=$(DIR)/evaluate
	$(BIN)/python -m tumorseg.predict ckpt_path=$$(ls $(DIR)/1/checkpoints/epoch_*.ckpt) \
	  input=data/phantom/val output=$(DIR)/predictions hydra.run.dir=$(DIR)/predictions
	# the shipped lung CT model (no ckpt_path) on one synthetic subject: a smoke run, not a measure
	$(BIN)/python -m tumorseg.predict input=data/phantom/val/images/Subject_10 output=$(DIR)/reference \
	  hydra.run.dir=$(DIR)/reference
	# the shipped model on a synthetic CT volume (NIfTI): a mask on its grid, summary.csv, the viewer page
	$(BIN)/python -m tumorseg.volumes.phantom $(DIR)/volume
	$(BIN)/python -m tumorseg.predict input=$(DIR)/volume/images/phantom.nii.gz output=$(DIR)/volume-predictions \
	  hydra.run.dir=$(DIR)/volume-predictions
	@echo "demo runs:   $(DIR)/0 (approach=split), $(DIR)/1 (approach=full): checkpoints/, plots/, metrics.json"
	@echo "table:       $(DIR)/report.md"
	@echo "predictions: $(DIR)/predictions/overlays"
	@echo "reference model (tumorseg/reference/MODEL_CARD.md) on synthetic slices: $(DIR)/reference/overlays"
	@echo "volume:      $(DIR)/volume-predictions/index.html (open it in a browser): phantom_mask.nii.gz, summary.csv"
	@echo "curves:      $(BIN)/tensorboard --logdir $(DIR)"

# qemu-x86_64 (Debian's qemu-user) runs ONNX Runtime as on a CPU with AVX2 and no VNNI, so the int8
# export is tested on both kinds of kernels whatever CPU runs the tests; Debian's chromium renders the
# viewer page that predict and evaluate write. Installed where root can.
TEST_PACKAGES = qemu-user chromium
test-tools:
	@{ command -v qemu-x86_64 >/dev/null || [ "$$(uname -m)" != x86_64 ]; } && command -v chromium >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PACKAGES) >/dev/null 2>&1 || \
	      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(TEST_PACKAGES) >/dev/null; }; }; } || \
	  echo "note: qemu-x86_64 or chromium is missing (apt-get install $(TEST_PACKAGES) as root): the AVX2 tests skip, the browser tests fail"

# pytest-xdist: two workers per core (up to 8; each takes its share of the cores' threads, tests/conftest.py), as
# many tests spend part of their time waiting on a command, a browser or a signal, which a second worker fills; an
# idle worker takes queued tests from a busy one, so a long test does not hold the rest back.
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); n=$$((2 * n)); [ "$$n" -gt 8 ] && n=8; echo $$n)
PYTEST = $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal

test: $(STAMP) test-tools web-vendor  ## the whole test suite (slow tests included; about 5.5-6 minutes on 2 cores)
	$(PYTEST) $(ARGS)

test-fast: $(STAMP) test-tools web-vendor  ## the tests that train nothing (not marked slow or trains)
	$(PYTEST) -m "not slow and not trains" $(ARGS)

# The fuzz campaign of tests/test_fuzz.py with its large budget (make test runs 24 cases of it): one process, the
# cases one after another; FUZZ_CASES=N for another budget. Writes outputs/fuzz/summary.md and failures.jsonl.
# TUMORSEG_FUZZ_COMMANDS=compare,serve (the environment) draws only those commands: a focused campaign.
FUZZ_CASES ?= 2000
fuzz: $(STAMP)  ## the fuzz campaign: FUZZ_CASES=2000 random commands, options and inputs (about 40 min); outputs/fuzz/
	TUMORSEG_FUZZ_CASES=$(FUZZ_CASES) TUMORSEG_FUZZ_MINIMIZE=1 TUMORSEG_FUZZ_OUT=outputs/fuzz \
	  $(BIN)/python -m pytest -q -s -p no:xdist -p no:cacheprovider tests/test_fuzz.py $(ARGS)

lint: $(STAMP)  ## ruff: lint and import order (configured in pyproject.toml; the test suite runs it too)
	$(BIN)/ruff check tumorseg tests experiments

train: $(STAMP)  ## one training run; pass overrides as ARGS="approach=full augment=elastic"
	$(BIN)/python -m tumorseg.train $(ARGS)

sweep: $(STAMP)  ## a grid sweep; ARGS="approach=split,full model.base_channels=16,32"
	$(BIN)/python -m tumorseg.train -m $(ARGS)

data: $(STAMP)  ## download the public lung CT slices into data/lung-ct-slices (resumable)
	$(BIN)/python -m tumorseg.fetch

bench: $(STAMP)  ## measure training, data and inference speed; writes outputs/bench/BENCHMARKS.md (ARGS="out=experiments" to record)
	$(BIN)/python -m tumorseg.bench $(ARGS)

tensorboard: $(STAMP)  ## curves of every run under outputs/
	$(BIN)/tensorboard --logdir outputs

clean:  ## remove caches (keeps outputs/ and .venv)
	rm -rf .pytest_cache **/__pycache__
