# skattr: two commands set everything up on a fresh machine.
#   make demo   create .venv if missing, install, run the demo
#   make test   create .venv if missing, install with test extras, run the suite
# The CPU torch wheel is installed first; override with e.g. `make test TORCH=torch`.

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?= -n 2

.PHONY: demo test lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-base: $(PY) pyproject.toml
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[plot]"
	touch $@

$(VENV)/.installed-test: $(PY) pyproject.toml
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test]"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-test
	$(PIP) install -q -e ".[test,bench]"
	touch $@

demo: $(VENV)/.installed-base
	$(PY) -m skattr demo

test: $(VENV)/.installed-test
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check skattr tests benchmarks examples
	$(VENV)/bin/ruff format --check skattr tests benchmarks examples

bench: $(VENV)/.installed-bench
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
