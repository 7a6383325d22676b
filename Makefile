# Two commands on a fresh machine: `make run` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Telemetry off, Prefect state kept inside the project, ephemeral server given time to start.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export DO_NOT_TRACK ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: setup run test lint bench clean

setup: $(VENV)/.installed

# torch first: a CPU wheel where the machine has one (pip's find-links), else the registry's.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q "torch==2.13.0" || $(PIP) install -q "torch>=2.2"
	$(PIP) install -q -e ".[dev,onnx,dask,ray]"
	touch $@

run: setup
	$(VENV)/bin/ehnas run

test: setup
	$(PY) -m pytest -q

# ruff (lint and format) and mypy, configured in pyproject.toml; .ci/run runs this before the tests.
lint: setup
	$(VENV)/bin/ruff check nas_lib tasks flows ehnas benchmarks tests
	$(VENV)/bin/ruff format --check nas_lib tasks flows ehnas benchmarks tests
	$(PY) -m mypy

bench: setup
	$(PY) benchmarks/build_forward.py

clean:
	rm -rf $(VENV) .prefect runs
