"""gatehouse: a self-hosted LLM gateway and RAG server with an OpenAI-compatible API.

``gatehouse.Client`` and ``gatehouse.AsyncClient`` (:mod:`gatehouse.client`)
are loaded on first use, so ``import gatehouse`` stays cheap.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gatehouse.client import AsyncClient, Client

try:
    __version__ = version("gatehouse")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

_LAZY = {"Client", "AsyncClient"}

__all__ = ["AsyncClient", "Client", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from gatehouse import client

        return getattr(client, name)
    raise AttributeError(f"module 'gatehouse' has no attribute {name!r}")
