# `make demo` and `make test` each create what they need first: a virtual environment in
# .venv with the CPU build of torch (unless a torch is already there) and gmdsl itself.
# A GPU user installs their CUDA build of torch into .venv first (see README.md).

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.gmdsl-installed
DEMO := build/demo

.PHONY: demo test golden clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[test]"
	touch $(STAMP)

# The main job: check, draw and compile every spec in specs/ (IR and PyTorch module).
demo: $(STAMP)
	mkdir -p $(DEMO)
	$(BIN)/gmdsl check specs/*.gm
	for spec in specs/*.gm; do \
	  name=$$(basename $$spec .gm); \
	  $(BIN)/gmdsl graph $$spec -o $(DEMO)/$$name.png || exit 1; \
	  $(BIN)/gmdsl compile $$spec --dump-ir -o $(DEMO)/$$name.ir.json || exit 1; \
	  $(BIN)/gmdsl compile $$spec -o $(DEMO) || exit 1; \
	done
	@echo "pictures, IR and compiled modules in $(DEMO)/"

test: $(STAMP)
	$(BIN)/python -m pytest

# Rewrite the golden files (diagnostics of tests/golden/bad/*.gm, IR, compiled modules) from the real CLI.
golden: $(STAMP)
	GMDSL_UPDATE_GOLDEN=1 $(BIN)/python -m pytest tests/test_golden.py

clean:
	rm -rf $(VENV) build
