# advtransfer: every target is a result or figure set; `make help` lists them.
# The Makefile is the one definition of each experiment, inside and outside the container.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= results
DATA ?= $(or $(ADVTRANSFER_DATA),data)
ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help venv demo exp1 data figures test lint clean

help:  ## show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml tools/install.sh
	$(PYTHON) -m venv $(VENV)
	bash tools/install.sh $(BIN)/python dev
	touch $@

venv: $(BIN)/.installed  ## create .venv with the pinned dependencies (torch 2.14.1, torchattacks 3.5.1, ART 1.20.1)

demo: $(BIN)/.installed  ## every experiment's demo profile on built-in tiny data, CPU, offline, ~4 min -> results/demo
	$(BIN)/advtransfer run exp1 --profile demo --out $(OUT)/demo $(ARGS)

exp1: $(BIN)/.installed  ## study 1 at paper scale (ImageNet-R, MobileNetV2; fetches data and weights first) -> results/paper
	$(BIN)/advtransfer run exp1 --profile paper --out $(OUT)/paper --data-root $(DATA) --download $(ARGS)

data: $(BIN)/.installed  ## download and verify ImageNet-R and the MobileNetV2 weights
	$(BIN)/advtransfer data fetch all --data-root $(DATA)

figures: $(BIN)/.installed  ## rebuild results.csv and figures of every results folder from saved results (no training)
	@for d in $(OUT)/*/; do if [ -d "$$d/cells" ]; then $(BIN)/advtransfer figures --results "$$d"; fi; done

test: $(BIN)/.installed  ## the test suite (same as `nox -s tests`)
	$(BIN)/nox -s tests

lint: $(BIN)/.installed  ## ruff
	$(BIN)/nox -s lint

clean:  ## remove the virtualenv and nox environments (results and data are kept)
	rm -rf $(VENV) .nox
