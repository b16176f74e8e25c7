# The two entry points a newcomer needs: `make demo` and `make test`.
# Both create .venv on first use (CPU PyTorch is installed first, so no CUDA build is pulled).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/latentsight: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

setup: $(BIN)/latentsight

demo: setup
	$(BIN)/latentsight demo

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/pip install --quiet -e ".[dev,bench]"
	for script in benchmarks/*.py; do $(BIN)/python $$script || exit 1; done

.PHONY: setup demo test bench
