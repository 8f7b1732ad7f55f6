# The two ways in for a fresh machine: `make run DATA=...` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/har15
OUT ?= runs
MODEL ?= mobilenet_v2
MINUTES ?= 10
# The run's name, fixed once: train, evaluate and serve use the same run.
ifndef NAME
NAME := $(MODEL)-$(shell date +%Y%m%d-%H%M%S)
endif
HOST ?= 127.0.0.1
PORT ?= 8000
# Published ImageNet weights copied onto this machine: imported into the weights store before training,
# so `--weights imagenet` finds them offline.
WEIGHTS_DIR ?= ../shared/data/weights

.PHONY: run test lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Main job: inspect the dataset (its exit status 1 only reports problems; the split drops unusable
# files), import the ImageNet weights in WEIGHTS_DIR (when there) into the weights store, train within
# MINUTES (`--weights auto`: the fine-tuning recipe from ImageNet where weights for MODEL can be had,
# else, said in one line, the from-scratch recipe), evaluate it on its held-out test split, and serve the
# web app with that run (Ctrl-C stops the server; the run stays). Under --time-limit the learning-rate
# schedule follows the clock.
run: $(BIN)/.installed
	-$(BIN)/actiscope data inspect $(DATA) --out $(OUT)/inspect
	for file in $(wildcard $(WEIGHTS_DIR)/*-imagenet.safetensors); do \
		$(BIN)/actiscope weights import "$$file" --model "$$(basename "$$file" -imagenet.safetensors)" || exit 1; \
	done
	$(BIN)/actiscope train $(DATA) --model $(MODEL) --weights auto --time-limit $(MINUTES) --out $(OUT) --name $(NAME)
	$(BIN)/actiscope evaluate $(OUT)/$(NAME)
	$(BIN)/actiscope serve --runs $(OUT) --model $(OUT)/$(NAME) --host $(HOST) --port $(PORT)

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/python -m mypy

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
