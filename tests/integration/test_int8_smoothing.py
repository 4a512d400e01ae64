"""SmoothQuant before int8: same function in fp32, and a new cache key for the new recipe."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from gatehouse.providers.local import onnx_export
from gatehouse.providers.local.embedding_backends import OnnxBackend, TokenizedText
from gatehouse.providers.local.embeddings import packaged_model_path
from gatehouse.providers.local.onnx_export import cache_key, default_cache_dir, onnx_model_file
from gatehouse.providers.local.smoothing import smooth

TEXTS = [
    "The cat sat on the mat.",
    "Quarterly revenue grew by eight percent, beating analysts' forecasts.",
    "hello",
    "حمزة بن عبد المطلب صحابي من صحابة رسول الإسلام",
    "Is it safe to take ibuprofen with coffee in the morning? " * 6,
]


@pytest.fixture(scope="module")
def model_path() -> Path:
    path = packaged_model_path()
    assert path is not None
    return path


def vectors(model_file: Path, model_path: Path) -> np.ndarray[Any, Any]:
    backend = OnnxBackend("onnx", model_file, model_path / "tokenizer.json", batch_size=2)
    ids = backend.tokenize(TEXTS)
    return backend.embed([TokenizedText(t, i) for t, i in zip(TEXTS, ids, strict=True)])


def test_the_smoothed_fp32_graph_gives_the_plain_fp32_vectors(
    model_path: Path, tmp_path: Path
) -> None:
    plain = onnx_model_file(model_path, default_cache_dir(), "onnx")
    smoothed = tmp_path / "smoothed.onnx"
    to_quantise = smooth(plain, smoothed, model_path / "tokenizer.json")

    # Six layers of query, key, value, attention output, FFN in and FFN out; the
    # three projections share an input, so one Mul per layer for them.
    assert len(to_quantise) == 36
    added = Counter(n.op_type for n in onnx.load(str(smoothed)).graph.node) - Counter(
        n.op_type for n in onnx.load(str(plain)).graph.node
    )
    assert added == Counter({"Mul": 24})

    cosines = (vectors(smoothed, model_path) * vectors(plain, model_path)).sum(axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_the_cache_key_changes_with_the_export_recipe(
    model_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = cache_key(model_path, "onnx-int8")
    monkeypatch.setattr(onnx_export, "EXPORT_FORMAT", 1)  # the unsmoothed recipe
    assert cache_key(model_path, "onnx-int8") != current
