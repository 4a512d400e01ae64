"""The openvino backends against sentence-transformers: vectors, batching, the fallback.

Needs the optional ``openvino`` package (``gatehouse[openvino]``); skipped
without it. OpenVINO computes in bf16 on CPUs with AMX and in fp32 elsewhere,
so the bounds below hold for both (bf16 on AMX measured 0.9999 at worst
over 300 msmarco passages). ``openvino-int8`` runs the ``onnx-int8`` graph,
and is held to that graph's bound.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from gatehouse.providers.local import embedding_backends
from gatehouse.providers.local.embedding_backends import OnnxBackend, TorchBackend, build_backend
from gatehouse.providers.local.onnx_export import default_cache_dir
from tests.integration.test_embedding_backends import (
    INT8_MIN_COSINE,
    SENTENCES,
    embed_all,
    model_path,
)

pytest.importorskip("openvino", reason="the openvino extra is not installed")
__all__ = ["model_path"]  # the fixture, shared with the ONNX Runtime backends' tests


# The lowest cosine to sentence-transformers fp32 each backend is held to.
BOUNDS = {"openvino": 0.999, "openvino-int8": INT8_MIN_COSINE}


@pytest.fixture(scope="module", params=sorted(BOUNDS))
def backend(model_path: Path, request: pytest.FixtureRequest) -> OnnxBackend:
    name = request.param
    built = build_backend(name, model_path, cache_dir=default_cache_dir(), batch_size=4)
    assert isinstance(built, OnnxBackend)
    assert built.name == name  # not a fallback
    return built


def test_vectors_match_sentence_transformers(backend: OnnxBackend, model_path: Path) -> None:
    ours = embed_all(backend, SENTENCES)
    theirs = embed_all(TorchBackend(model_path, batch_size=32), SENTENCES)
    assert ours.shape == (len(SENTENCES), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-4)
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() >= BOUNDS[backend.name], cosines


def test_a_vector_does_not_depend_on_its_batch(backend: OnnxBackend) -> None:
    together = embed_all(backend, SENTENCES)
    alone = np.vstack([embed_all(backend, [sentence]) for sentence in SENTENCES])
    cosines = (together * alone).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_a_small_run_on_one_thread_agrees_with_the_all_core_graph(
    backend: OnnxBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = [s for s in SENTENCES if len(backend.tokenize([s])[0]) <= 64]
    one_thread = np.vstack([embed_all(backend, [sentence]) for sentence in short])
    assert backend._small is not None
    assert backend._small is not backend._session
    monkeypatch.setattr(embedding_backends, "SMALL_RUN_TOKENS", 0)
    all_cores = np.vstack([embed_all(backend, [sentence]) for sentence in short])
    cosines = (one_thread * all_cores).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_openvino_that_fails_to_load_falls_back_to_onnx_runtime(
    model_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    name: embedding_backends.BackendName,
) -> None:
    from gatehouse.providers.local import openvino_runtime

    class Broken:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("no CPU plugin")

    monkeypatch.setattr(openvino_runtime, "OpenVinoGraph", Broken)
    with caplog.at_level(logging.WARNING, logger="gatehouse.providers.local"):
        built = build_backend(name, model_path, cache_dir=default_cache_dir(), batch_size=4)
    assert built.name in {"onnx", "onnx-int8"}
    assert f"the {name} backend could not be built" in caplog.text
    assert embed_all(built, SENTENCES[:2]).shape == (2, 384)
