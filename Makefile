# Two commands on a fresh machine: `make run` and `make test`. Both create .venv first.
# Installs are exact: torch, then requirements.lock (docs/install.md says why torch stays out of it).
PYTHON ?= python3
VENV ?= .venv
VENV_LATEST ?= .venv-latest
PY := $(VENV)/bin/python
LOCK := requirements.lock
EXTRAS := dev,onnx,dask,ray,bench
TORCH_VERSION ?= 2.13.0
# Where torch comes from: this machine's CPU wheels if it has them; on another machine set e.g.
# TORCH_INDEX=https://download.pytorch.org/whl/cpu (CPU build) or leave it empty (PyPI's CUDA build on Linux).
TORCH_FIND_LINKS ?= $(wildcard /opt/wheels)
TORCH_INDEX ?=
# torch's own dependencies come from the lock; a CUDA build also needs its nvidia-* packages: TORCH_NO_DEPS= (empty).
TORCH_NO_DEPS ?= --no-deps
TORCH_SOURCES := $(if $(TORCH_FIND_LINKS),--find-links $(TORCH_FIND_LINKS)) $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
# Extra pytest arguments for test, test-fast and test-latest, e.g. PYTEST_ARGS='-x -k train'.
PYTEST_ARGS ?=
# uv when it is on PATH (seconds), else the venv's pip (minutes); both read the same lock.
UV ?= $(shell command -v uv 2>/dev/null)
# The one floor: requires-python in pyproject.toml, checked with the interpreter that is about to build the venv.
PYTHON_FLOOR := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)"/\1/p' pyproject.toml)
# Telemetry off, Prefect state kept inside the project, ephemeral server given time to start.
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 90
export DO_NOT_TRACK ?= 1
export MLFLOW_DISABLE_TELEMETRY ?= true

.PHONY: setup run test test-fast test-latest lint lock bench check-python clean

setup: $(VENV)/.installed

check-python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] < tuple(map(int, "$(PYTHON_FLOOR)".split("."))))' || { \
	  echo "ehnas needs Python >= $(PYTHON_FLOOR) (requires-python in pyproject.toml), but PYTHON=$(PYTHON) is" \
	  "'$$($(PYTHON) --version 2>&1)'. Name a newer one, e.g. make setup PYTHON=python$(PYTHON_FLOOR)" >&2; exit 1; }

# install(venv, args): uv into that venv's interpreter, or that venv's own pip.
install = $(if $(UV),$(UV) pip install --python $(1)/bin/python,$(1)/bin/python -m pip install -q) $(2)

# torch first, alone: its dependencies come from the lock, or from the resolution in test-latest.
define make_venv
	$(PYTHON) -m venv $(1)
	$(call install,$(1),$(TORCH_NO_DEPS) $(TORCH_SOURCES) "torch==$(TORCH_VERSION)")
endef

$(VENV)/.installed: pyproject.toml $(LOCK) | check-python
	$(call make_venv,$(VENV))
	$(call install,$(VENV),--require-hashes --no-deps -r $(LOCK))
	$(call install,$(VENV),--no-deps --no-build-isolation -e .)
	$(if $(UV),$(UV) pip check --python $(PY),$(PY) -m pip check)
	touch $@

# Refresh the lock: the newest versions pyproject.toml allows, resolved against torch==$(TORCH_VERSION).
lock:
	@test -n "$(UV)" || { echo "make lock needs uv: pip install uv" >&2; exit 1; }
	echo "torch==$(TORCH_VERSION)" | $(UV) pip compile pyproject.toml - --extra dev --extra onnx --extra dask --extra ray --extra bench \
	  --generate-hashes $(TORCH_SOURCES) --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-emit-package torch \
	  --upgrade -o $(LOCK)

run: setup
	$(VENV)/bin/ehnas run

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

# The inner loop: everything but the tests that start servers, subprocess CLIs or whole flows.
test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The whole suite on the newest releases pyproject.toml allows (torch stays at TORCH_VERSION), in its own venv,
# so that a breaking release is found on purpose rather than on the day someone installs.
test-latest: check-python
	rm -rf $(VENV_LATEST)
	$(call make_venv,$(VENV_LATEST))
	echo "torch==$(TORCH_VERSION)" > $(VENV_LATEST)/torch-constraint.txt
	$(call install,$(VENV_LATEST),--upgrade -c $(VENV_LATEST)/torch-constraint.txt $(TORCH_SOURCES) -e ".[$(EXTRAS)]")
	$(VENV_LATEST)/bin/python -m pip check
	$(VENV_LATEST)/bin/python -m pip list
	$(VENV_LATEST)/bin/python -m pytest -q $(PYTEST_ARGS)

# ruff (lint and format) and mypy, configured in pyproject.toml; .ci/run runs this before the tests.
lint: setup
	$(VENV)/bin/ruff check nas_lib tasks flows ehnas benchmarks tests
	$(VENV)/bin/ruff format --check nas_lib tasks flows ehnas benchmarks tests
	$(PY) -m mypy

# A local OpenAI-compatible LLM on 127.0.0.1 (builds llama-cpp-python once, ~30 min; docs/llm.md).
.PHONY: llm-local
llm-local: setup
	VENV=$(VENV) bash scripts/llm_local.sh

bench: setup
	$(PY) benchmarks/build_forward.py

clean:
	rm -rf $(VENV) $(VENV_LATEST) .prefect runs
