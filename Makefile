# The README's commands. Each target installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)

.PHONY: install demo test test-fast lint format bench clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/tuneloop demo

# PostgreSQL is started for the repository tests; in CI its absence is a failure.
test: install
	@url=$$(scripts/postgres.sh) || { \
	  if [ "$$CI" = "true" ]; then echo "PostgreSQL is required in CI" >&2; exit 1; fi; \
	  echo "PostgreSQL unavailable: its tests will be skipped (they never are in CI)" >&2; url=""; }; \
	$(BIN)/ruff check src tests benchmarks && \
	$(BIN)/lint-imports && \
	TUNELOOP_TEST_POSTGRES_URL="$$url" $(BIN)/pytest -q

test-fast: install
	$(BIN)/pytest -q -x -m "not slow and not postgres"

lint: install
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: install
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/metrics_query.py
	$(BIN)/python benchmarks/sdk_overhead.py
	$(BIN)/python benchmarks/dashboard_pages.py
	$(BIN)/python benchmarks/config_resolve.py
	$(BIN)/python benchmarks/eval_runner.py
	$(BIN)/python benchmarks/stats_engine.py
	$(BIN)/python benchmarks/runtime_overhead.py
	$(BIN)/python benchmarks/recommend_sampling.py

clean:
	rm -rf $(VENV) .tuneloop .pytest_cache .mypy_cache .ruff_cache
