# The two ways in for a fresh machine: `make run DATA=...` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/har15
OUT ?= runs
MODEL ?= resnet18
MINUTES ?= 10
# The run's name, fixed once: train, evaluate and serve use the same run.
ifndef NAME
NAME := $(MODEL)-$(shell date +%Y%m%d-%H%M%S)
endif
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Main job: inspect the dataset (its exit status 1 only reports problems; the split drops unusable
# files), train the benchmark recipe (bench/bench_recipe.py) within MINUTES, evaluate it on its held-out
# test split, and serve the web app with that run (Ctrl-C stops the server; the run stays).
# --epochs is an upper bound: under --time-limit the learning-rate schedule follows the clock.
run: $(BIN)/.installed
	-$(BIN)/actiscope data inspect $(DATA) --out $(OUT)/inspect
	$(BIN)/actiscope train $(DATA) --model $(MODEL) --image-size 112 --batch-size 64 --epochs 30 \
		--lr 2e-3 --warmup-epochs 1 --label-smoothing 0.1 --time-limit $(MINUTES) --out $(OUT) --name $(NAME)
	$(BIN)/actiscope evaluate $(OUT)/$(NAME)
	$(BIN)/actiscope serve --runs $(OUT) --model $(OUT)/$(NAME) --host $(HOST) --port $(PORT)

lint: $(BIN)/.installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
