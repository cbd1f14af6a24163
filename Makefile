# advtransfer: every target is a result or figure set; `make help` lists them.
# The Makefile is the one definition of each experiment, inside and outside the container.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= results
DATA ?= $(or $(ADVTRANSFER_DATA),data)
ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help venv demo exp1 exp2 exp2-real-mini data figures test lint clean

help:  ## show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml tools/install.sh
	$(PYTHON) -m venv $(VENV)
	bash tools/install.sh $(BIN)/python dev
	touch $@

venv: $(BIN)/.installed  ## create .venv with the pinned dependencies (torch 2.14.1, torchattacks 3.5.1, ART 1.20.1)

demo: $(BIN)/.installed  ## every experiment's demo profile on built-in tiny data, CPU, offline, ~7 min (+2 min first setup) -> results/demo
	$(BIN)/advtransfer run exp1 --profile demo --out $(OUT)/demo $(ARGS)
	$(BIN)/advtransfer run exp2 --profile demo --out $(OUT)/demo $(ARGS)

exp1: $(BIN)/.installed  ## study 1 at paper scale (ImageNet-R, MobileNetV2; fetches data and weights first) -> results/paper
	$(BIN)/advtransfer run exp1 --profile paper --out $(OUT)/paper --data-root $(DATA) --download $(ARGS)

exp2: $(BIN)/.installed  ## study 2 at paper scale (CIFAR-10/100 via torchvision, BaseNet and ResNet-18) -> results/paper
	$(BIN)/advtransfer run exp2 --profile paper --out $(OUT)/paper --data-root $(DATA) --download $(ARGS)

exp2-real-mini: $(BIN)/.installed  ## study 2 experiment 1 on real CIFAR-10 JPEGs (../shared/data/cifar10-jpg), ~15 min CPU
	$(BIN)/advtransfer data fetch cifar10-jpg --data-root $(DATA) --source $(or $(CIFAR10_JPG),../shared/data/cifar10-jpg)
	$(BIN)/advtransfer run exp2 --profile cifar10-real-mini --out $(OUT)/cifar10-real-mini --data-root $(DATA) $(ARGS)

data: $(BIN)/.installed  ## download and verify ImageNet-R, the MobileNetV2 and ResNet-18 weights, CIFAR-10/100
	$(BIN)/advtransfer data fetch all --data-root $(DATA)
	$(BIN)/advtransfer data fetch weights --model resnet18 --data-root $(DATA)
	$(BIN)/advtransfer data fetch cifar10 --data-root $(DATA)
	$(BIN)/advtransfer data fetch cifar100 --data-root $(DATA)

figures: $(BIN)/.installed  ## rebuild results.csv and figures of every results folder from saved results (no training)
	@for d in $(OUT)/*/; do if [ -d "$$d/cells" ]; then $(BIN)/advtransfer figures --results "$$d"; fi; done

test: $(BIN)/.installed  ## the test suite (same as `nox -s tests`)
	$(BIN)/nox -s tests

lint: $(BIN)/.installed  ## ruff
	$(BIN)/nox -s lint

clean:  ## remove the virtualenv and nox environments (results and data are kept)
	rm -rf $(VENV) .nox
