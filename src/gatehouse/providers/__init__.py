"""Provider adapters: one model behind one small contract each.

A remote provider speaks to its upstream through an
:class:`~gatehouse.providers.upstream.Upstream` (JSON, SSE, error
classification), which sends bytes through a :class:`Transport`: by default
:class:`~gatehouse.providers.http_transport.HTTPTransport`, in tests
:class:`MockTransport`, or your own. (Those two modules load aiohttp, so they
are imported from where they live, when a provider is built.)
"""

from gatehouse.providers.base import (
    ChatProvider,
    EmbeddingProvider,
    ModelInfo,
    ModelKind,
    Readiness,
)
from gatehouse.providers.mock_transport import MockTransport
from gatehouse.providers.transport import Transport, UpstreamRequest, UpstreamResponse

__all__ = [
    "ChatProvider",
    "EmbeddingProvider",
    "MockTransport",
    "ModelInfo",
    "ModelKind",
    "Readiness",
    "Transport",
    "UpstreamRequest",
    "UpstreamResponse",
]
