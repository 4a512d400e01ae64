# The two commands a new user needs:
#   make serve   run the server on 127.0.0.1:8080 with the embedded defaults
#   make test    lint, type-check and run the whole test suite
# Both create .venv and install everything (the gateway, the local models and
# RAG: '.[all,dev]') on first use; later runs reuse it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: serve test lint typecheck unit install clean services chroma slim deploy-tools \
	lock dist sbom audit

install: $(STAMP)

# Reinstall whenever pyproject.toml changes. llama-cpp-python compiles
# llama.cpp from source the first time; pip keeps the built wheel in its
# cache, so later installs take seconds. gatehouse uses only the llama
# library itself, so the multimodal library (mtmd, LLAVA_BUILD) and
# llama.cpp's tools, examples, tests and server are left out of the build.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/pip install --disable-pip-version-check -q -e '.[all,dev]'
	@touch $(STAMP)

# A Chroma server for the vector-database tests and benchmarks, in its own
# virtual environment so that gatehouse itself never depends on chromadb.
CHROMA_STAMP := .venv-chroma/.installed
chroma: $(CHROMA_STAMP)
$(CHROMA_STAMP):
	@test -x .venv-chroma/bin/python || $(PYTHON) -m venv .venv-chroma
	.venv-chroma/bin/pip install --disable-pip-version-check -q 'chromadb>=1.5,<1.6'
	@touch $(CHROMA_STAMP)

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

# `pip install gatehouse` without extras, in a fresh virtual environment, serves a
# proxied chat call and imports none of the heavy packages (scripts/check-slim-install.sh).
slim:
	@sh scripts/check-slim-install.sh

# helm and the docker compose plugin, pinned, into .tools/: the tests render the
# Helm chart and check deploy/docker-compose.yml with them (scripts/ensure-deploy-tools.sh).
deploy-tools: $(STAMP)
	@PYTHON=$(BIN)/python sh scripts/ensure-deploy-tools.sh

test: lint typecheck services $(CHROMA_STAMP) slim deploy-tools
	$(BIN)/pytest

# Supply chain (docs/security.md). The server's dependencies (pyproject's
# [project.dependencies], no extras) pinned with the hash of every file pip may
# install: `pip install --require-hashes -r requirements/server.lock` installs
# exactly these or fails. Regenerate after changing the dependencies;
# tests/unit/test_supply_chain.py checks that the lock still covers them.
LOCK := requirements/server.lock
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file=$(LOCK) pyproject.toml

# The wheel, built reproducibly: every file's time is the last commit's
# (SOURCE_DATE_EPOCH) and the build backend is the one installed here, so two
# builds of one commit are byte for byte the same (tests/unit/test_supply_chain.py).
# Then the CycloneDX SBOM of the server's locked dependencies beside it.
dist: $(STAMP)
	rm -rf build dist
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct) $(BIN)/python -m build --wheel --no-isolation --outdir dist
	$(MAKE) sbom

sbom: $(STAMP)
	@mkdir -p dist
	$(BIN)/cyclonedx-py requirements $(LOCK) --pyproject pyproject.toml --of JSON \
		--output-reproducible -o dist/gatehouse-server.cdx.json

# Known vulnerabilities in the locked dependencies, from OSV. Needs OSV's API (or
# --osv-url to a mirror of it): --strict fails rather than report nothing when a
# package could not be checked (docs/security.md says why this is not offline).
audit: $(STAMP)
	$(BIN)/pip-audit --strict --require-hashes --disable-pip -s osv -r $(LOCK)

clean:
	rm -rf $(VENV) .venv-chroma .venv-slim .tools .mypy_cache .ruff_cache .pytest_cache \
		build dist
