# inferform — the commands a developer and CI run. `make install` then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint bench clean

install: $(BIN)/inferform

$(BIN)/inferform: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

test: install
	$(BIN)/ruff check inferform tests scripts benchmarks stacks
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check inferform tests scripts benchmarks stacks

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
