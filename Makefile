# gcrm_kit: the commands the README gives. Everything runs in a local virtual environment (.venv).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PARAMS ?= toy

.PHONY: setup toy test test-fast test-distributed bench gpu-check figure-png lab check clean-venv

# Install the kit with its notebook, test and scale extras. torch is pinned (pyproject.toml) and installed first so
# a CPU machine takes its CPU build instead of the CUDA wheels. deepspeed is built from source against that torch
# (no build isolation, ops left to build on first use: DS_BUILD_OPS=0) before the kit, which then finds it installed.
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip "setuptools>=68" wheel
	$(BIN)/python -m pip install -q torch==2.13.0
	DS_BUILD_OPS=0 $(BIN)/python -m pip install -q --no-build-isolation deepspeed==0.19.8
	$(BIN)/python -m pip install -q -e ".[lab,dev,scale]"
	touch $@

# The main job: every notebook with params/<notebook>/$(PARAMS).yaml, headless through papermill.
toy: setup
	$(BIN)/gcrm run all --params $(PARAMS)

# The test suite (what CI runs). It adds the "bench" extra (TRL) so the benchmark harness's comparison is tested
# too. `make test-distributed` runs only the multi-process tests.
test: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python -m pytest -q

# The unit tier alone (tests/unit: pure functions and tiny objects, no training, no notebooks): under a minute.
test-fast: setup
	$(BIN)/python -m pytest -q tests/unit

test-distributed: setup
	$(BIN)/python -m pytest -q -m distributed

# The benchmark suite (about 15 minutes on a 2-core CPU): installs the "bench" extra (TRL), writes results.json and
# results.md to a new folder under outputs/benchmarks/. RM_RUN=<a finished 01_rm_training run> adds the pruning and
# steering benchmarks; BENCH_ARGS passes more options (python tests/benchmarks/bench_suite.py --help).
RM_RUN ?=
BENCH_ARGS ?=
bench: setup
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python tests/benchmarks/bench_suite.py $(if $(RM_RUN),--rm-run $(RM_RUN)) $(BENCH_ARGS)

# ~1B and ~8B reward-model steps on a GPU, MFU and memory (tests/benchmarks/gpu_check.py); GPU_CHECK_ARGS: options
gpu-check:
	$(if $(wildcard $(BIN)/python),$(BIN)/python,$(PYTHON)) tests/benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

# A run's figure as a PNG for docs/: make figure-png FIG=<run>/figures/<name>.json OUT=docs/figures/<name>.png
# (needs Chrome or Chromium: set BROWSER_PATH if it is not found).
FIG ?=
OUT ?=
figure-png: setup
	$(BIN)/python -m pip install -q -e ".[docs]"
	$(BIN)/python -c "import plotly.io as pio, sys; pio.read_json(sys.argv[1]).write_image(sys.argv[2], scale=2)" $(FIG) $(OUT)

# Validate every params file.
check: setup
	$(BIN)/gcrm check

# JupyterLab on the notebooks, with a kernel that imports gcrm_kit.
lab: setup
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
