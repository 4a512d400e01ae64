"""The rerank request and answer on the wire of Cohere, Jina and vLLM. Pure.

The three take ``model``, ``query``, ``documents`` (strings) and ``top_n``,
and answer ``results`` of ``index`` and ``relevance_score``. They differ in
where the endpoint is, whether ``return_documents`` may be sent (Jina's and
vLLM's, not Cohere v2's: gatehouse never asks for it, the route gives the
documents back from the request), and how usage comes: Cohere bills
``meta.billed_units.search_units``, Jina and vLLM count ``usage`` tokens.
"""

from __future__ import annotations

from typing import Any, Literal

from gatehouse.core.errors import UpstreamError
from gatehouse.core.ids import new_id
from gatehouse.core.rerank import RerankRequest, RerankResponse, RerankResult, RerankUsage

RerankApi = Literal["cohere", "jina", "vllm"]
# Where each API answers, after the deployment's base_url.
PATHS: dict[RerankApi, str] = {"cohere": "/v2/rerank", "jina": "/v1/rerank", "vllm": "/rerank"}
DEFAULT_BASES: dict[RerankApi, str | None] = {
    "cohere": "https://api.cohere.com",
    "jina": "https://api.jina.ai",
    "vllm": None,  # self-hosted: base_url is required
}


def request_to_wire(request: RerankRequest, upstream_model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        **(request.model_extra or {}),
        "model": upstream_model,
        "query": request.query,
        "documents": request.texts(),
    }
    if request.top_n is not None:
        body["top_n"] = request.top_n
    return body


def response_from_wire(data: Any, request: RerankRequest) -> RerankResponse:
    """The upstream's answer, ranked and cut to ``top_n`` (see :meth:`RerankResponse.ranked`)."""
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise UpstreamError("the rerank upstream answered without 'results'")
    results = []
    for item in data["results"]:
        if not isinstance(item, dict):
            raise UpstreamError("the rerank upstream answered a result that is not an object")
        index, score = item.get("index"), item.get("relevance_score")
        if not isinstance(index, int) or not isinstance(score, int | float):
            raise UpstreamError("a rerank result lacks 'index' or 'relevance_score'")
        results.append(RerankResult(index=index, relevance_score=float(score)))
    answer = RerankResponse(
        id=str(data.get("id") or new_id("rerank")),
        model=request.model,
        results=results,
        usage=_usage(data),
    )
    return answer.ranked(request)


def _usage(data: dict[str, Any]) -> RerankUsage:
    usage = _object(data.get("usage"))
    billed = _object(_object(data.get("meta")).get("billed_units"))
    total = _int(usage.get("total_tokens")) or _int(billed.get("input_tokens"))
    prompt = _int(usage.get("prompt_tokens")) or total
    searches = _int(billed.get("search_units")) or 1
    return RerankUsage(prompt_tokens=prompt, total_tokens=total or prompt, search_units=searches)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
