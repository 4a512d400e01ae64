"""How the RAG parts reach models: through the gateway, as the caller, tagged by operation.

The gateway is in this process (``serve --role all``, the CLI) or another one
reached over HTTP (``serve --role rag``: :class:`~gatehouse.gateway.remote.RemoteGateway`);
the RAG parts see one :class:`~gatehouse.gateway.ModelClient` either way.
"""

from __future__ import annotations

from typing import Literal

from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.core.principal import Principal
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from gatehouse.gateway import CallerClient, ChatStream, Gateway, ModelClient
from gatehouse.gateway.remote import RemoteGateway
from gatehouse.rag.embedder import Embedder, GatewayEmbedder, PrefixedEmbedder
from gatehouse.rag.models import CollectionSpec


class ModelCalls:
    """Model clients for operations run as some caller.

    ``gateway`` ``None``: an engine without models (keyword search only), whose
    model calls fail with 503. A :class:`RemoteGateway` receives the calls
    over HTTP with the caller's own credential. ``embedder`` replaces the
    gateway for embeddings (benchmarks embed in process).
    """

    def __init__(
        self, gateway: Gateway | RemoteGateway | None, embedder: Embedder | None = None
    ) -> None:
        self.gateway = gateway
        self._embedder = embedder

    def client(self, caller: Principal, tag: str) -> ModelClient:
        """Model calls as ``caller``, tagged with the operation that makes them."""
        if self.gateway is None:
            return _NO_GATEWAY
        if isinstance(self.gateway, RemoteGateway):
            return self.gateway.client(caller, tag)
        return CallerClient(self.gateway, caller, tag)

    def embedder(
        self,
        spec: CollectionSpec,
        client: ModelClient,
        purpose: Literal["query", "passage"] = "passage",
    ) -> Embedder:
        """What embeds ``spec``'s chunks (``passage``) or queries, through ``client``."""
        embedder = self._embedder or GatewayEmbedder(client, spec.embedding_model)
        prefix = spec.prefix(purpose)
        return PrefixedEmbedder(embedder, prefix) if prefix else embedder


class _NoGateway:
    """The model client of an engine built without a gateway (keyword search only)."""

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion:
        raise _unavailable()

    async def chat_stream(self, request: ChatCompletionRequest) -> ChatStream:
        raise _unavailable()

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        raise _unavailable()


def _unavailable() -> ServiceUnavailableError:
    return ServiceUnavailableError("no gateway configured for model calls")


_NO_GATEWAY = _NoGateway()
