# czii: two commands set everything up on a fresh machine.
#   make demo   simulate -> normalize -> labels -> train -> predict -> postprocess -> tune -> score
#   make test   the test suite (CPU, a few minutes)
#   make lint   ruff check, ruff format --check and mypy (strict on the library)
# Override the torch build if you want a CUDA wheel, e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu124"

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.czii-installed
DEMO_DIR   ?= demo-output
PYTEST_ARGS ?=

.PHONY: all install demo test test-slow lint bench bench-accuracy bench-perf bench-pretrain pretrained clean

all: test

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash examples/demo.sh $(DEMO_DIR)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(PYTEST_ARGS)

# ruff's rules and style (pyproject.toml [tool.ruff]); `ruff format` fixes the style.
# mypy: strict on czii_cli, as configured in pyproject.toml [tool.mypy].
lint: $(STAMP)
	$(BIN)/ruff check czii_cli tests benchmarks
	$(BIN)/ruff format --check czii_cli tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Part of `make bench`; alone with e.g. `make bench-accuracy BUDGETS="60"` (seconds).
bench-accuracy: $(STAMP)
	$(BIN)/python -m benchmarks.bench_accuracy $(BUDGETS)

# the inference speed rows alone; CZII_BENCH_SHAPE="96 256 256" for a quick, reduced-size run
bench-perf: $(STAMP)
	$(BIN)/python -m benchmarks perf

# pre-training on broad simulated data vs training from scratch, fine-tuned on another project
# (about half an hour on an idle 2-core CPU; not part of `make bench`); settings: benchmarks/bench_pretrain.py
bench-pretrain: $(STAMP)
	$(BIN)/python -m benchmarks.bench_pretrain

# the pre-trained model of bench-pretrain alone, its commands recorded in the file: it rebuilds
# the one shipped as `--init builtin:light-sim` (`czii info builtin:light-sim`) into bench-output/
pretrained: $(STAMP)
	mkdir -p bench-output
	$(BIN)/python -m benchmarks.bench_pretrain build bench-output/light-sim.pt

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench-output .pytest_cache
