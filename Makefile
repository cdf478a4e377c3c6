# Two entry points: `make demo` (the whole job on built-in data) and `make test` (the suite CI runs).
# Both create the virtual environment on first use. TORCH picks the torch build (CPU wheel from local disk in CI).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

$(VENV)/.installed: setup.py pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,export,runtime]"
	touch $@

.PHONY: demo test lint
demo: $(VENV)/.installed
	$(VENV)/bin/derain-demo --out derain_out

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q
