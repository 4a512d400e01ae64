"""A governed gateway in front of MockTransport upstreams, for the tracing tests.

No OpenTelemetry import here: the test that tracing off loads none of it runs
this module in a fresh interpreter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gatehouse.core.config import DeploymentConfig, RouterConfig, Settings
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)
from gatehouse.gateway import CallContext, Gateway, ModelRegistry
from gatehouse.gateway.governance import Governance
from gatehouse.gateway.routing.registry import single_deployment_group
from gatehouse.gateway.routing.router import Router
from gatehouse.gateway.service import pipeline_stages
from gatehouse.gateway.trace_context import Tracer
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.base import ModelInfo
from gatehouse.providers.mock_transport import streamed
from gatehouse.providers.openai_compat import OpenAICompatProvider

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN}-01"
API_KEY = "sk-upstream-secret-0123456789"
PROMPT = "tell me about the northern lights"

COMPLETION = {
    "id": "chatcmpl-up",
    "object": "chat.completion",
    "created": 0,
    "model": "up-model-2026",
    "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "green"}}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
}
EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
    "model": "up-embed-2026",
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
}


def sse(*payloads: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(p) + b"\n\n" for p in payloads) + b"data: [DONE]\n\n"


def chunk(content: str | None, finish: str | None = None, usage: Any = None) -> dict[str, Any]:
    choices = (
        [] if usage else [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]
    )
    return {
        "id": "chatcmpl-up",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "up-model-2026",
        "choices": choices,
        "usage": usage,
    }


STREAM = sse(
    chunk("green"),
    chunk(None, "stop"),
    chunk(None, usage={"prompt_tokens": 7, "completion_tokens": 1, "total_tokens": 8}),
)


@dataclass
class Upstream:
    """What the MockTransport answers, and every request it was sent."""

    requests: list[UpstreamRequest] = field(default_factory=list)
    failures: list[UpstreamResponse] = field(default_factory=list)

    def __call__(self, request: UpstreamRequest) -> UpstreamResponse:
        self.requests.append(request)
        if self.failures:
            return self.failures.pop(0)
        if request.url.endswith("/embeddings"):
            return UpstreamResponse(200, {}, orjson.dumps(EMBEDDINGS))
        if request.stream:
            return UpstreamResponse(200, {}, lines=streamed(STREAM))
        return UpstreamResponse(200, {}, orjson.dumps(COMPLETION))

    def traceparents(self) -> list[str | None]:
        return [r.headers.get("traceparent") for r in self.requests]


def provider(kind: str, upstream: Upstream, tracer: Tracer | None) -> Any:
    config = DeploymentConfig(
        provider="openai_compat",
        model="up-model" if kind == "chat" else "up-embed",
        base_url="http://upstream.internal:8000/v1",
    )
    name = "m" if kind == "chat" else "e"
    built: Any = OpenAICompatProvider(
        config,
        info=ModelInfo(
            id=name, kind="chat" if kind == "chat" else "embedding", owned_by="t", context_window=0
        ),
        api_key=API_KEY,
        transport=MockTransport(upstream),
    )
    if tracer is not None:
        built = tracer.provider(built, deployment=name, group=name, config=config)
    return built


async def build(
    tmp_path: Path, tracer: Tracer | None, *, retries: int = 0
) -> tuple[Gateway, Upstream]:
    upstream = Upstream()
    chat = single_deployment_group(provider("chat", upstream, tracer))
    chat.num_retries = retries
    embed = single_deployment_group(provider("embed", upstream, tracer))
    registry = ModelRegistry(groups=[chat, embed])
    settings = Settings(data_dir=tmp_path)
    governance = Governance(settings)
    router = Router(registry, RouterConfig(backoff_base=0), sleep=_no_sleep)
    gateway = Gateway(
        registry,
        started_at=0,
        stages=pipeline_stages(governance),
        router=router,
        governance=governance,
        tracer=tracer,
    )
    await gateway.start()
    return gateway, upstream


async def _no_sleep(seconds: float) -> None:
    return None


def chat_call(*, stream: bool = False, headers: dict[str, str] | None = None) -> CallContext:
    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": 50,
            "temperature": 0.2,
            "stream": stream,
        }
    )
    return CallContext(
        request_id="req-1",
        endpoint="chat",
        request=request,
        headers={"traceparent": TRACEPARENT} if headers is None else headers,
    )


def embed_call() -> CallContext:
    request = EmbeddingRequest(model="e", input=PROMPT)
    return CallContext(
        request_id="req-2",
        endpoint="embeddings",
        request=request,
        headers={"traceparent": TRACEPARENT},
    )


async def run(
    gateway: Gateway, ctx: CallContext
) -> ChatCompletion | EmbeddingResponse | list[ChatCompletionChunk]:
    """One call through the pipeline, a stream read to its end."""
    result = await gateway.handle(ctx)
    if isinstance(result, ChatCompletion | EmbeddingResponse):
        return result
    return [chunk async for chunk in result]
