# advtransfer: every target is a result or figure set; `make help` lists them.
# The Makefile is the one definition of each experiment, inside and outside the container.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= results
DATA ?= $(or $(ADVTRANSFER_DATA),data)
ARGS ?=
PROFILE ?= paper
DOCKER_IMAGE ?= advtransfer:cuda
TORCH_CACHE ?= $(or $(TORCH_HOME),$(HOME)/.cache/torch)
DOCKER_RUN_FLAGS ?= $(if $(findstring cuda,$(DOCKER_IMAGE)),--gpus all) --shm-size 8g
GIT_COMMIT = $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.DEFAULT_GOAL := help

.PHONY: help venv demo exp1 exp2 exp2-real-mini data figures reproduce-all test lint lock check-lock \
	docker-build docker-run image-check bench-gpu clean

help:  ## show this help
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml tools/install.sh
	$(PYTHON) -m venv $(VENV)
	bash tools/install.sh $(BIN)/python dev
	touch $@

venv: $(BIN)/.installed  ## create .venv with the pinned dependencies (torch 2.14.1, torchattacks 3.5.1, ART 1.20.1)

demo: $(BIN)/.installed  ## every experiment's demo profile on built-in tiny data, CPU, offline, ~5 min (+2 min setup) -> results/demo (report.html)
	$(BIN)/advtransfer reproduce-all --profile demo --out $(OUT)/demo $(ARGS)

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

reproduce-all: $(BIN)/.installed  ## every experiment of PROFILE=paper|demo (paper fetches data), then figures, report.md, report.html -> results/PROFILE
	$(BIN)/advtransfer reproduce-all --profile $(PROFILE) --out $(OUT)/$(PROFILE) --data-root $(DATA) $(if $(filter paper,$(PROFILE)),--download) $(ARGS)

EXP ?= exp2
SHARDS ?= 4
NGPUS ?=
SHARD_TARGETS := $(addprefix shard-,$(shell seq 1 $(SHARDS)))
.PHONY: shards $(SHARD_TARGETS)

shards: $(SHARD_TARGETS)  ## EXP=exp1|exp2 as SHARDS=N parallel jobs (make -jN shards; NGPUS=G: one GPU each; make data first), then gather
	$(BIN)/advtransfer figures --results $(OUT)/$(PROFILE)

$(SHARD_TARGETS): shard-%: $(BIN)/.installed
	$(if $(NGPUS),CUDA_VISIBLE_DEVICES=$$(( ($* - 1) % $(NGPUS) ))) $(BIN)/advtransfer run $(EXP) --profile $(PROFILE) \
		--out $(OUT)/$(PROFILE) --data-root $(DATA) --shard $*/$(SHARDS) $(ARGS)

test: $(BIN)/.installed  ## the test suite (same as `nox -s tests`)
	$(BIN)/nox -s tests

lint: $(BIN)/.installed  ## ruff, hadolint (Dockerfiles), shellcheck (scripts)
	$(BIN)/nox -s lint

lock:  ## regenerate the hashed lock files requirements/lock.txt and test-lock.txt from pyproject.toml (uv, PyPI)
	bash tools/lock.sh $(PYTHON)

check-lock:  ## install requirements/lock.txt into a fresh venv with --require-hashes and run the fast tests in it
	bash tools/check_lock.sh $(PYTHON)

docker-build:  ## build the images advtransfer:cuda (docker/Dockerfile) and advtransfer:cpu (docker/Dockerfile.cpu)
	docker build -f docker/Dockerfile --build-arg GIT_COMMIT=$(GIT_COMMIT) -t advtransfer:cuda .
	docker build -f docker/Dockerfile.cpu --build-arg GIT_COMMIT=$(GIT_COMMIT) -t advtransfer:cpu .

docker-run:  ## run an image command, e.g. ARGS="reproduce-all --profile paper" (DOCKER_IMAGE=advtransfer:cpu for the CPU image)
	mkdir -p $(DATA) $(TORCH_CACHE) $(OUT)
	docker run --rm $(DOCKER_RUN_FLAGS) --user $$(id -u):$$(id -g) \
		-v $(abspath $(DATA)):/data -v $(abspath $(TORCH_CACHE)):/cache/torch -v $(abspath $(OUT)):/results \
		$(DOCKER_IMAGE) $(ARGS)

KIND ?= cpu
IMAGE_CHECK_ARGS ?=
image-check:  ## build KIND=cpu|cuda with docker or podman and run help, tests, a 1-min reproduce-all in it (IMAGE_CHECK_ARGS="--standin ...": no registry)
	bash tools/image_check.sh --kind $(KIND) $(IMAGE_CHECK_ARGS)

bench-gpu: $(BIN)/.installed  ## GPU benchmarks in <= 8 min (train img/s, attacks, bf16, one paper-shaped cell) -> results/bench/gpu.json, .md
	$(BIN)/advtransfer bench gpu --json $(OUT)/bench/gpu.json $(ARGS)

clean:  ## remove the virtualenv and nox environments (results and data are kept)
	rm -rf $(VENV) .nox
