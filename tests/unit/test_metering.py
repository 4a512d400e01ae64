"""Metering's event rows: exactly a UsageEvent's fields, priced once per call."""

from __future__ import annotations

from pathlib import Path

from gatehouse.catalog import PricingTable
from gatehouse.core.config import Price
from gatehouse.core.errors import RateLimitError
from gatehouse.core.principal import Principal
from gatehouse.core.records import UsageEvent
from gatehouse.core.types import ChatCompletionRequest, Usage
from gatehouse.gateway.metering import MeteringStage
from gatehouse.gateway.pipeline import CallContext
from gatehouse.store.outbox import Outbox

PRICING = PricingTable({"m": Price(input_cost_per_token=1.0, output_cost_per_token=2.0)})


def context(**fields: object) -> CallContext:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    ctx = CallContext(request_id="req-1", endpoint="chat", request=request)
    ctx.principal = Principal(id="key:k1", kind="key", key_id="k1", team="red")
    for name, value in fields.items():
        setattr(ctx, name, value)
    return ctx


def stage(tmp_path: Path) -> MeteringStage:
    return MeteringStage(Outbox(tmp_path / "outbox.db"), PRICING, clock=lambda: 1_780_000_000.0)


def test_an_event_row_is_a_valid_usage_event_with_every_field(tmp_path: Path) -> None:
    usage = Usage.model_validate(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
        }
    )
    ctx = context(usage=usage, deployment="m#0", first_token_at=None)
    row = stage(tmp_path).event(ctx, "ok", 200, None)
    assert set(row) == set(UsageEvent.model_fields)
    event = UsageEvent.model_validate(row)
    assert (event.prompt_tokens, event.completion_tokens, event.cached_tokens) == (10, 5, 4)
    assert event.cost_usd == 10 * 1.0 + 5 * 2.0  # no cached price set: cached at input price
    assert (event.team, event.stream, event.cache_hit, event.error) == ("red", True, False, None)


def test_a_cache_hit_costs_nothing_and_an_error_keeps_its_message(tmp_path: Path) -> None:
    usage = Usage(prompt_tokens=3, completion_tokens=1, total_tokens=4)
    hit = stage(tmp_path).event(context(usage=usage, cache="hit"), "ok", 200, None)
    assert (hit["cost_usd"], hit["cache_hit"]) == (0.0, True)
    refused = stage(tmp_path).event(context(), "rate_limit_exceeded", 429, RateLimitError("slow"))
    assert (refused["prompt_tokens"], refused["cost_usd"], refused["error"]) == (0, 0.0, "slow")


def test_a_stream_the_client_left_is_charged_what_it_used(tmp_path: Path) -> None:
    """Left before the upstream's usage chunk: the prompt and what was streamed, estimated;
    before, 0 tokens and $0, so closing a stream just before its end cost nothing."""
    import asyncio

    from gatehouse.catalog import prompt_tokens
    from gatehouse.core.types import ChatCompletionChunk
    from gatehouse.gateway.service import _observe

    def chunk(text: str) -> ChatCompletionChunk:
        return ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "created": 1,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": text}}],
            }
        )

    async def upstream():  # type: ignore[no-untyped-def]
        for text in ("Hello ", "world, and ", "then a usage chunk that never comes"):
            yield chunk(text)

    ctx = context(deployment="m#0")
    metering = stage(tmp_path)

    async def call_next(ctx: CallContext):  # type: ignore[no-untyped-def]
        return _observe(ctx, upstream(), forward_usage=False)

    async def client_reads_two_and_leaves() -> None:
        stream = await metering(ctx, call_next)
        for _ in range(2):
            await stream.__anext__()  # type: ignore[union-attr]
        await stream.aclose()  # type: ignore[union-attr]

    asyncio.run(client_reads_two_and_leaves())
    prompt = prompt_tokens(ctx.request)
    assert ctx.usage is not None
    assert (ctx.usage.prompt_tokens, ctx.usage.completion_tokens) == (prompt, 5)  # 17 chars
    row = metering.event(ctx, "client_closed", 499, None)
    assert row["cost_usd"] == prompt * 1.0 + 5 * 2.0
    # A usage the upstream sent is never replaced by the estimate.
    known = Usage(prompt_tokens=7, completion_tokens=1, total_tokens=8)
    ctx.usage = known
    ctx.estimate_abandoned_usage()
    assert ctx.usage is known
