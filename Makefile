# The README's two commands: `make evaluate` (the main job) and `make test` (every test).
# Each sets up what is missing first, and only that: a virtual environment in .venv, the torch
# build for this machine (CUDA where nvidia-smi finds a GPU, CPU otherwise), the project with its
# extras, the verified data. Run again, they skip straight to the job.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
BIN := $(VENV)/bin
EXTRAS := torch,test,plot,notebook,lint,package

.PHONY: evaluate test setup data
.DELETE_ON_ERROR:

evaluate: data
	$(BIN)/dlfs-ch3 evaluate

test: data
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n auto --dist loadfile

setup: $(VENV)/.installed

# Reinstalled when pyproject.toml changes. A CPU machine asks the CPU index for torch first (PyPI's
# Linux wheel pulls several GB of CUDA libraries; its +cpu build sorts above it); a configured mirror
# or find-links still serves.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(BIN)/python -m pip install -q '$(TORCH)'; \
	else \
	  $(BIN)/python -m pip install -q '$(TORCH)' --extra-index-url $(TORCH_CPU_INDEX) --timeout 15 --retries 1 \
	  || $(BIN)/python -m pip install -q '$(TORCH)'; \
	fi
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

# The MNIST test set and the book's weights, checked by size and SHA-256 (downloaded only if absent).
data: setup
	$(BIN)/dlfs-ch3 fetch-data
