"""``POST /v1/rerank``: Cohere's and Jina's rerank shape, for any rerank model group.

A governed call like embeddings (scope ``embeddings``, the key's models,
limits, budgets, the ledger): the pipeline runs it to the group's deployment,
an upstream reranker or ``local/rerank``. Documents asked back
(``return_documents``) come from the caller's own request, never from what
went upstream (which the guard may have masked).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gatehouse.core.rerank import RerankRequest, RerankResponse
from gatehouse.gateway import CallContext, Gateway
from gatehouse.server.http import JSONResponse, parse_body
from gatehouse.server.routes.table import RouteSpec


async def rerank(request: Request) -> Response:
    body = await parse_body(request, RerankRequest)
    ctx = CallContext(
        request_id=request.state.request_id,
        endpoint="rerank",
        request=body,
        headers=request.headers,
        principal=request.state.principal,
    )
    gateway: Gateway = request.app.state.gateway
    answer = await gateway.rerank(ctx)
    return JSONResponse(
        answer.ranked(body).model_dump(exclude_none=True), headers=ctx.response_headers
    )


ROUTES = [
    RouteSpec(
        "POST",
        "/v1/rerank",
        rerank,
        summary="Rerank documents by relevance to a query (Cohere/Jina shape)",
        request_model=RerankRequest,
        response_model=RerankResponse,
        tag="openai",
        scope="embeddings",
    ),
]
