"""The adapter for rerank upstreams: Cohere (``/v2/rerank``), Jina (``/v1/rerank``)
and vLLM (``/rerank``), which share one request and answer shape."""

from gatehouse.providers.rerank.provider import RerankUpstreamProvider

__all__ = ["RerankUpstreamProvider"]
