# skattr: two commands set everything up on a fresh machine.
#   make demo   create .venv if missing, install, run the demo
#   make test   create .venv if missing, install with test extras, run the suite
#   make docs   build the documentation into docs/_build/html
# torch is installed first (this project's machines hold 2.13.0 as a CPU build;
# see the README elsewhere); override with e.g. `make test TORCH=torch`.

PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
PYTEST_ARGS ?= -n 2

.PHONY: demo test lint bench docs clean

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
	$(PY) benchmarks/quality.py
	$(PY) benchmarks/interactions.py
	$(PY) benchmarks/throughput.py
	$(PY) benchmarks/memory.py
	SKATTR_FUZZ_EXAMPLES=1000 $(PY) -m pytest -q -p no:xdist tests/test_fuzz.py

$(VENV)/.installed-docs: $(PY) pyproject.toml
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[test,docs]"
	touch $@

# the documentation: Sphinx with numpydoc, the pydata theme, MyST Markdown and
# the examples as a gallery (run at build time), offline, warnings as errors
docs: $(VENV)/.installed-docs
	rm -rf docs/_build docs/auto_examples docs/sg_execution_times.rst
	MPLBACKEND=Agg $(PY) -m sphinx -W --keep-going -q -b html docs docs/_build/html
	@echo "docs/_build/html/index.html"

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/auto_examples docs/sg_execution_times.rst
