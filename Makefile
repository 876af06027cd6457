# gcrm_kit: the commands the README gives. Everything runs in a local virtual environment (.venv).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PARAMS ?= toy

.PHONY: setup toy test lab check clean-venv

# Install the kit with its notebook and test extras. torch is pinned (pyproject.toml) and installed first so a
# CPU machine takes its CPU build instead of the CUDA wheels.
setup: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[lab,dev]"
	touch $@

# The main job: every notebook with params/<notebook>/$(PARAMS).yaml, headless through papermill.
toy: setup
	$(BIN)/gcrm run all --params $(PARAMS)

# The test suite (what CI runs).
test: setup
	$(BIN)/python -m pytest -q

# Validate every params file.
check: setup
	$(BIN)/gcrm check

# JupyterLab on the notebooks, with a kernel that imports gcrm_kit.
lab: setup
	$(BIN)/jupyter lab notebooks/

clean-venv:
	rm -rf $(VENV)
