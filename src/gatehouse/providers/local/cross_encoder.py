"""A local cross-encoder: a sentence-transformers ``CrossEncoder`` that scores
``(query, passage)`` pairs. It serves ``local/rerank`` (``local.rerank.cross_encoder``)
and RAG's ``cross_encoder`` reranking (:mod:`gatehouse.rag.cross_encoder`).

No cross-encoder ships with gatehouse: none is packaged where it installs
from, and weights are never downloaded at run time. A folder is named by
path: one a sentence-transformers ``CrossEncoder`` loads (``config.json`` of
a ``...ForSequenceClassification`` model with one output, its weights and
tokenizer), such as a copy of ``cross-encoder/ms-marco-MiniLM-L-6-v2``. The
folder is checked before it is loaded, because ``CrossEncoder`` would also
load a plain encoder (such as the embedding model) with a randomly
initialised scoring head and rank at random.

The model scores with PyTorch on CPU, in batches, one forward pass at a time
(blocking: callers run it in a worker thread).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gatehouse.core.errors import ServiceUnavailableError, ValidationFailedError
from gatehouse.core.extras import needs_extra

SETTING = "cross_encoder"
BATCH_SIZE = 32
# A cross-encoder reads at most a few hundred tokens of the pair; more text is cut by it anyway.
MAX_PASSAGE_CHARS = 4000


def problem_with(path: Path) -> str | None:
    """Why ``path`` is not a usable cross-encoder folder, or ``None`` when it looks like one."""
    if not path.is_dir():
        return f"{path} is not a folder"
    config_file = path / "config.json"
    if not config_file.is_file():
        return f"{path} has no config.json, so it is not a model folder"
    config = _json_object(config_file)
    if isinstance(config, str):
        return config
    architectures = config.get("architectures") or []
    if not any(str(name).endswith("ForSequenceClassification") for name in architectures):
        declared = ", ".join(map(str, architectures)) or "no architecture"
        return (
            f"{path} is not a cross-encoder: its config.json declares {declared}, "
            "not a ...ForSequenceClassification model"
        )
    labels = len(config.get("id2label") or {}) or int(config.get("num_labels", 1))
    if labels != 1:
        return f"{path} scores {labels} labels; a reranking cross-encoder gives one score"
    st_config = path / "config_sentence_transformers.json"
    if st_config.is_file():
        st = _json_object(st_config)
        if isinstance(st, str):
            return st
        kind = st.get("model_type")
        if kind not in (None, "CrossEncoder"):
            return f"{path} is a sentence-transformers {kind}, not a CrossEncoder"
    return None


def _json_object(path: Path) -> dict[str, Any] | str:
    """The JSON object in ``path``, or why it is not one."""
    try:
        value = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        return f"{path} is not valid JSON ({exc})"
    if not isinstance(value, dict):
        return f"{path} is not a JSON object"
    return value


class CrossEncoderModel:
    """A cross-encoder folder, checked now and loaded on first use.

    Raises :class:`ValidationFailedError` naming the ``cross_encoder`` setting
    when ``path`` is not a cross-encoder folder.
    """

    def __init__(self, path: Path, *, batch_size: int = BATCH_SIZE) -> None:
        problem = problem_with(path)
        if problem is not None:
            raise ValidationFailedError(f"{SETTING}: {problem}", param=SETTING)
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.path = path
        self.batch_size = batch_size
        self._model: Any = None
        # One forward pass at a time: the fast tokenizer is not safe to share
        # between threads, and two passes on 2 cores are no faster than one.
        self._lock = threading.Lock()

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """The model's score of each pair, computed ``batch_size`` pairs at a time (blocking)."""
        with self._lock:
            model = self._load()
            scores: list[float] = []
            for start in range(0, len(pairs), self.batch_size):
                batch = list(pairs[start : start + self.batch_size])
                out = model.predict(batch, batch_size=len(batch), show_progress_bar=False)
                scores.extend(float(s) for s in np.asarray(out, dtype=np.float64).reshape(-1))
        if len(scores) != len(pairs):
            raise ServiceUnavailableError(
                f"{SETTING} {self.path} gave {len(scores)} scores for {len(pairs)} pairs"
            )
        return scores

    def tokens(self, pairs: Sequence[tuple[str, str]]) -> int:
        """How many tokens the model reads for ``pairs`` (each pair as one input,
        cut at the model's maximum length as scoring cuts it)."""
        with self._lock:
            tokenizer = self._load().tokenizer
            encoded = tokenizer([q for q, _ in pairs], [p for _, p in pairs], truncation=True)
        return sum(len(ids) for ids in encoded["input_ids"])

    def _load(self) -> Any:
        if self._model is None:
            with needs_extra("local", "rerank: cross_encoder"):
                from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(str(self.path), device="cpu", local_files_only=True)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ServiceUnavailableError(
                    f"{SETTING} {self.path} could not be loaded: {exc}"
                ) from None
        return self._model
