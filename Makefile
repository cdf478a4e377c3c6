# Two entry points: `make demo` (the whole job on built-in data) and `make test` (the suite CI runs).
# Both create the virtual environment on first use.
#
# Which torch: TORCH_INDEX picks where torch $(TORCH_VERSION) comes from.
#   auto (default): a torch wheel that pip's own configuration keeps on local disk (find-links), if there is one;
#                   otherwise the CPU build from the PyTorch CPU index (about 200 MB).
#   cpu:            the CPU build from $(CPU_INDEX).
#   cu130, cu128:   a CUDA build from the PyTorch index of that CUDA version (several GB), for GPU machines.
#   pypi:           whatever pip's configured index gives: on Linux x86_64 that is PyPI's CUDA build (several GB).
#   a URL:          that index.
# e.g. `make TORCH_INDEX=cu130 demo`. The package's other dependencies then come from pip's configured index.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_VERSION ?= 2.13.0
TORCH_INDEX ?= auto
PYTORCH_WHEELS := https://download.pytorch.org/whl
CPU_INDEX := $(PYTORCH_WHEELS)/cpu

ifeq ($(TORCH_INDEX),auto)
INSTALL_TORCH = ($(PY) -m pip install -q --no-deps --no-index "torch==$(TORCH_VERSION)" 2>/dev/null \
	&& $(PY) -m pip install -q "torch==$(TORCH_VERSION)") \
	|| $(PY) -m pip install -q --index-url $(CPU_INDEX) "torch==$(TORCH_VERSION)"
else ifeq ($(TORCH_INDEX),cpu)
INSTALL_TORCH = $(PY) -m pip install -q --index-url $(CPU_INDEX) "torch==$(TORCH_VERSION)"
else ifeq ($(TORCH_INDEX),pypi)
INSTALL_TORCH = $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
else ifneq ($(findstring ://,$(TORCH_INDEX)),)
INSTALL_TORCH = $(PY) -m pip install -q --index-url $(TORCH_INDEX) "torch==$(TORCH_VERSION)"
else
INSTALL_TORCH = $(PY) -m pip install -q --index-url $(PYTORCH_WHEELS)/$(TORCH_INDEX) "torch==$(TORCH_VERSION)"
endif

$(VENV)/.installed: setup.py pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(INSTALL_TORCH)
	$(PY) -c "import torch; print('torch', torch.__version__, '(CUDA ' + str(torch.version.cuda) + ')' if torch.version.cuda else '(CPU build)')"
	$(PY) -m pip install -q -e ".[dev,export,runtime]"
	touch $@

.PHONY: demo test lint
# The demo's own folder: a re-run reuses the stages that finished (derain-demo --redo STAGE to run one again).
demo: $(VENV)/.installed
	$(VENV)/bin/derain-demo --out derain_out

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q
