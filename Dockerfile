# syntax=docker/dockerfile:1
#
# The gatehouse image: docs/deployment.md says how to build and run it.
#
#   docker build -t gatehouse .                          # everything: local models, RAG, OTel
#   docker build -t gatehouse:gateway --build-arg EXTRAS= .   # the gateway alone (pip install gatehouse)
#   docker build -t gatehouse:rag --build-arg EXTRAS=rag .    # a `serve --role rag` service
#
# Two stages: the builder compiles every wheel (llama-cpp-python's llama.cpp
# included) into a virtual environment; the runtime stage copies that
# environment onto a clean python:3.11-slim, with no compiler, as a non-root
# user. The entrypoint runs `gatehouse "$@"`, `serve` by default, so the same
# image also runs `db upgrade` or any other command.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

# Which extras of pyproject.toml to install: "all" (local, rag, otel), any
# comma-separated list ("rag,otel"), or empty for the gateway alone.
ARG EXTRAS=all
# The flags `make install` passes to llama.cpp's build (Makefile, LLAMA_CMAKE_ARGS;
# tests/unit/test_deploy_files.py keeps the two equal): the llama library alone.
ARG LLAMA_CMAKE_ARGS="-DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF"
# An image runs on machines other than the one that built it, so llama.cpp is
# not tuned to the builder's CPU (its default) but to x86-64 with AVX2 and FMA.
# "-DGGML_NATIVE=ON" builds for the build machine's CPU instead.
ARG LLAMA_CPU_ARGS="-DGGML_NATIVE=OFF"
# torch is pinned to a version (pyproject.toml); this index serves its CPU-only
# wheel, where the default one resolves to a CUDA build of several gigabytes.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src

ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# Wheels first (the compiled ones are the expensive part), then a
# non-editable install of exactly those wheels, with no index.
RUN --mount=type=cache,target=/root/.cache/pip \
    CMAKE_ARGS="$LLAMA_CMAKE_ARGS $LLAMA_CPU_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    pip wheel --wheel-dir /wheels --extra-index-url "$TORCH_INDEX_URL" ".${EXTRAS:+[$EXTRAS]}"
RUN python -m venv /opt/gatehouse \
    && /opt/gatehouse/bin/pip install --no-index --find-links /wheels "gatehouse${EXTRAS:+[$EXTRAS]}" \
    && /opt/gatehouse/bin/gatehouse version


FROM ${PYTHON_IMAGE} AS runtime

ARG EXTRAS=all
LABEL org.opencontainers.image.title="gatehouse" \
      org.opencontainers.image.description="Self-hosted LLM gateway and RAG server with an OpenAI-compatible API" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.gatehouse.extras="${EXTRAS}"

# libgomp1: llama.cpp's OpenMP threads (the compiler stays in the builder).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gatehouse \
    && useradd --system --uid 10001 --gid gatehouse --home-dir /var/lib/gatehouse \
        --no-create-home --shell /usr/sbin/nologin gatehouse \
    && install -d -o gatehouse -g gatehouse -m 0750 /var/lib/gatehouse

COPY --from=builder /opt/gatehouse /opt/gatehouse
COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/gatehouse-entrypoint

# Listen on every interface of the container (the server refuses to do so
# without authentication: give it GATEHOUSE_MASTER_KEY or JWT settings, see
# docs/deployment.md), keep state and the exported ONNX model in the volume,
# and never look for model weights online (they ship inside the packages).
ENV PATH=/opt/gatehouse/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEHOUSE_SERVER__HOST=0.0.0.0 \
    GATEHOUSE_SERVER__PORT=8080 \
    GATEHOUSE_DATA_DIR=/var/lib/gatehouse \
    XDG_CACHE_HOME=/var/lib/gatehouse/cache \
    HF_HUB_OFFLINE=1

USER 10001:10001
WORKDIR /var/lib/gatehouse
# SQLite governance state (when no PostgreSQL is configured), the usage outbox,
# RAG collections and the model cache.
VOLUME ["/var/lib/gatehouse"]
EXPOSE 8080

# Liveness only (the process serves HTTP); readiness of the dependencies is
# /readyz, for load balancers and Kubernetes. Python, since the image has no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEHOUSE_SERVER__PORT', '8080'), timeout=4)"]

ENTRYPOINT ["gatehouse-entrypoint"]
CMD ["serve"]
