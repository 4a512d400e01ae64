# The two commands a new user needs:
#   make serve   run the server on 127.0.0.1:8080 with the embedded defaults
#   make test    lint, type-check and run the whole test suite
# Both create .venv and install everything on first use; later runs reuse it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint typecheck unit install clean services

install: $(STAMP)

# Reinstall whenever pyproject.toml changes. llama-cpp-python compiles
# llama.cpp from source the first time (about 5 minutes on 2 cores); pip keeps
# the built wheel in its cache, so later installs take seconds.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/pip install --disable-pip-version-check -q -e '.[dev]'
	@touch $(STAMP)

serve: $(STAMP)
	$(BIN)/gatehouse serve

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# redis-server and PostgreSQL, which integration tests start as real processes.
services:
	@sh scripts/ensure-test-services.sh

test: lint typecheck services
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
