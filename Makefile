# inferform — the commands a developer and CI run. `make install` then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint bench bytecode clean

install: $(BIN)/inferform

$(BIN)/inferform: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(MAKE) --no-print-directory bytecode
	@touch $@

# An installed wheel ships compiled bytecode; an editable install under PYTHONDONTWRITEBYTECODE=1 would
# recompile the package on every CLI start, so compile it once (Python ignores stale files by mtime).
bytecode:
	@$(BIN)/python -m compileall -q inferform

test: install
	$(BIN)/ruff check inferform tests scripts benchmarks stacks
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check inferform tests scripts benchmarks stacks

bench: install bytecode
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
