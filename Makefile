# One command per task, the same locally and in CI.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# Two workers, one test file each at a time: most tests wait on processes (relay, agent, Chromium).
TEST_WORKERS ?= 2

.PHONY: run test lint bench bench-more clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test,dev]'
	touch $@

run: $(STAMP)
	$(BIN)/tether $(ARGS)

test: $(TEST_STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# One table: every row of the relay beside its baseline, measured in the same run (a few minutes).
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/relay_scale.py

# The other benchmarks, each with its own output.
bench-more: $(TEST_STAMP)
	$(BIN)/python benchmarks/relay_throughput.py
	$(BIN)/python benchmarks/session_bench.py
	$(BIN)/python benchmarks/reconnect.py
	$(BIN)/python benchmarks/relay_memory.py
	$(BIN)/python benchmarks/sandbox_cost.py
	$(BIN)/python benchmarks/e2e_cost.py

clean:
	rm -rf $(VENV) build src/*.egg-info
