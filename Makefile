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

.PHONY: demo compile-all lint typecheck test docs golden clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install $(TORCH_PIP_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[test,docs]"
	touch $(STAMP)

# The main job: check, draw and compile every spec in specs/ (IR and PyTorch module), then
# train the MNIST table's recipe on real MNIST with 100 labels for a few epochs, evaluate it,
# draw its pictures, and write what it reached into the README (bench/demo_summary.py).
DEMO_RUN := runs/mnist-demo
DEMO_SPEC ?= specs/mnist_wide_enum.gm
DEMO_EPOCHS ?= 3
DEMO_README ?= README.md
DEMO_KEEP ?= results/runs/mnist-demo
SPECS ?= $(wildcard specs/*.gm)

demo: compile-all
	rm -rf $(DEMO_RUN)
	$(BIN)/gmdsl train $(DEMO_SPEC) --labels 100 --epochs $(DEMO_EPOCHS) --run $(DEMO_RUN)
	$(BIN)/gmdsl eval $(DEMO_RUN)
	$(BIN)/gmdsl show $(DEMO_RUN)
	$(BIN)/python bench/demo_summary.py $(DEMO_RUN) --readme $(DEMO_README) --keep $(DEMO_KEEP)

compile-all: $(STAMP)
	mkdir -p $(DEMO)
	$(BIN)/gmdsl check $(SPECS)
	for spec in $(SPECS); do \
	  name=$$(basename $$spec .gm); \
	  $(BIN)/gmdsl graph $$spec -o $(DEMO)/$$name.png || exit 1; \
	  $(BIN)/gmdsl compile $$spec --dump-ir -o $(DEMO)/$$name.ir.json || exit 1; \
	  $(BIN)/gmdsl compile $$spec -o $(DEMO) || exit 1; \
	done
	@echo "pictures, IR and compiled modules in $(DEMO)/"

# The build's checks: ruff (lint and format), mypy, then the test suite.
test: lint typecheck
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy reads the package as it is installed (runtime/ as gmdsl.runtime, a layout mypy cannot map
# by itself), so it checks a copy of that layout in build/typecheck and reports the real paths.
TYPECHECK := build/typecheck
typecheck: $(STAMP)
	rm -rf $(TYPECHECK) && mkdir -p $(TYPECHECK)
	cp -r gmdsl $(TYPECHECK)/gmdsl && cp -r runtime $(TYPECHECK)/gmdsl/runtime && cp -r grammar $(TYPECHECK)/gmdsl/grammar
	cd $(TYPECHECK) && bash -o pipefail -c '$(abspath $(BIN))/mypy --config-file $(CURDIR)/pyproject.toml -p gmdsl \
	  | sed -e "s|^gmdsl/runtime/|runtime/|" -e "s|^gmdsl/grammar/|grammar/|"'

# The documentation site (mkdocs.yml) into site/, every warning an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Rewrite the golden files (diagnostics of tests/golden/bad/*.gm, IR, compiled modules) from the real CLI.
golden: $(STAMP)
	GMDSL_UPDATE_GOLDEN=1 $(BIN)/python -m pytest tests/test_golden.py

clean:
	rm -rf $(VENV) build runs site
