"""A rerank upstream (Cohere, Jina or vLLM) behind the rerank provider contract."""

from __future__ import annotations

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import ConfigError
from gatehouse.core.rerank import RerankRequest, RerankResponse
from gatehouse.providers.base import ModelInfo, Readiness
from gatehouse.providers.rerank import translate
from gatehouse.providers.rerank.translate import RerankApi
from gatehouse.providers.transport import Transport
from gatehouse.providers.upstream import Upstream


class RerankUpstreamProvider:
    def __init__(
        self,
        config: DeploymentConfig,
        *,
        info: ModelInfo,
        api_key: str | None,
        api: RerankApi,
        transport: Transport | None = None,
    ) -> None:
        """``api`` picks the endpoint (``base_url`` + ``/v2/rerank``, ``/v1/rerank`` or
        ``/rerank``); ``transport`` carries the calls (default: pooled HTTP)."""
        base = config.base_url or translate.DEFAULT_BASES[api]
        if base is None:
            raise ConfigError(f"deployment {info.id}: base_url is required for provider {api}")
        self.info = info
        self._model = config.model
        self._url = base.rstrip("/") + translate.PATHS[api]
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._upstream = Upstream.for_deployment(
            config, deployment=info.id, dialect="openai", headers=headers, transport=transport
        )

    def readiness(self) -> Readiness:
        return Readiness(True, f"remote ({self._url})")

    async def aclose(self) -> None:
        await self._upstream.aclose()

    async def rerank(self, request: RerankRequest) -> RerankResponse:
        data, _ = await self._upstream.post_json(
            self._url, translate.request_to_wire(request, self._model)
        )
        return translate.response_from_wire(data, request)
