"""A hard budget holds at any concurrency, even when the upstream counts more tokens
than any estimate from characters would (issue 11, item 9)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gatehouse.catalog import prompt_tokens
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    Usage,
)
from gatehouse.gateway import CallContext
from gatehouse.store.counters import MemoryCounters

from .governed import Governed, governed_app

HI = [{"role": "user", "content": "hi"}]
MAX_TOKENS = 5
# What the upstream reports for "hi" (a chat template around two characters):
# characters / 4 says 4. Prices (governed.py): 1 USD a prompt token, 2 a completion token.
PROMPT_TOKENS = 10
REAL_COST = PROMPT_TOKENS * 1 + MAX_TOKENS * 2
BUDGET = 100 * REAL_COST


class Heavy:
    """Answers every call with heavy usage, holding each one until ``gate`` opens."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.inside = 0

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.inside += 1
        await self.gate.wait()
        return ChatCompletion(
            id="chatcmpl-heavy",
            created=0,
            model="test/echo",
            choices=[Choice(message=AssistantMessage(content="x"), finish_reason="length")],
            usage=Usage(
                prompt_tokens=PROMPT_TOKENS,
                completion_tokens=MAX_TOKENS,
                total_tokens=PROMPT_TOKENS + MAX_TOKENS,
            ),
        )


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


async def _call(gov: Governed, key: str) -> httpx.Response:
    return await gov.http.post(
        "/v1/chat/completions",
        json={"model": "default", "messages": HI, "max_tokens": MAX_TOKENS},
        headers={"authorization": f"Bearer {key}"},
    )


async def _overlapping(gov: Governed, heavy: Heavy, key: str, count: int) -> list[int]:
    """``count`` calls at once, every admitted one still in flight when the last is decided."""
    heavy.gate.clear()
    heavy.inside = 0
    calls = [asyncio.create_task(_call(gov, key)) for _ in range(count)]
    seen = (-1, -1)
    while heavy.inside + sum(c.done() for c in calls) < count:
        # Past the deployment's in-flight limit (64) admitted calls wait in its
        # queue: once nothing moves any more, every call has been decided.
        await asyncio.sleep(0.05)
        now = (heavy.inside, sum(c.done() for c in calls))
        if now == seen:
            break
        seen = now
    heavy.gate.set()
    return [r.status_code for r in await asyncio.gather(*calls)]


async def test_300_overlapping_calls_never_pass_the_budget(gov: Governed) -> None:
    heavy = Heavy()
    gov.chat.complete = heavy.complete  # type: ignore[method-assign]
    key = await gov.new_key(budget={"max_usd": BUDGET, "period": "day", "hard": True})

    statuses = await _overlapping(gov, heavy, key, 300)
    assert set(statuses) <= {200, 429}
    accepted = statuses.count(200)
    assert accepted > 0
    assert accepted * REAL_COST <= BUDGET

    # Settling gave back what each reservation did not use: one call at a time, the
    # budget now admits calls until what was spent plus one reservation passes it.
    request = ChatCompletionRequest.model_validate(
        {"model": "default", "messages": HI, "max_tokens": MAX_TOKENS}
    )
    reservation = prompt_tokens(request, bound=True) * 1 + MAX_TOKENS * 2
    heavy.gate.set()
    while (await _call(gov, key)).status_code == 200:
        accepted += 1
    assert accepted * REAL_COST <= BUDGET < accepted * REAL_COST + reservation

    await gov.governance.shipper.drain()
    rows = (await gov.admin("GET", "/admin/spend?group_by=key")).json()["rows"]
    assert rows[0]["cost_usd"] == accepted * REAL_COST <= BUDGET


async def test_a_stream_left_before_its_usage_is_charged_to_the_budget(gov: Governed) -> None:
    # The upstream streams its words and finish_reason, then takes its time over
    # the usage; the client has the whole answer and hangs up meanwhile. The
    # server cancels the request's task there, innermost stage first.
    streams = gov.chat.stream

    async def slow_usage(request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        async for chunk in streams(request):
            if chunk.usage is not None:
                await asyncio.Event().wait()  # never: the client leaves first
            yield chunk

    gov.chat.stream = slow_usage  # type: ignore[method-assign]
    words = " ".join(["word"] * 40)
    body = {"model": "default", "messages": [{"role": "user", "content": words}], "max_tokens": 50}
    # Room for one call's reservation (its most possible cost) and 10 USD more.
    reservation = prompt_tokens(ChatCompletionRequest.model_validate(body), bound=True) + 50 * 2
    budget = {"max_usd": reservation + 10, "period": "day", "hard": True}
    key = await gov.new_key(budget=budget)
    answered = asyncio.Event()

    async def client() -> None:
        ctx = CallContext(
            request_id="req-left",
            endpoint="chat",
            request=ChatCompletionRequest.model_validate(
                {**body, "stream": True, "stream_options": {"include_usage": True}}
            ),
            headers={"authorization": f"Bearer {key}"},
        )
        assert gov.gateway is not None
        stream = await gov.gateway.handle(ctx)
        assert isinstance(stream, AsyncIterator)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                answered.set()

    task = asyncio.create_task(client())
    await answered.wait()
    await asyncio.sleep(0.01)  # the task now waits for the usage
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # The abandoned answer cost about 40 completion tokens (2 USD each) and its
    # prompt, so no second reservation fits; settled at 0, as it once was, one did.
    refused = await gov.http.post(
        "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    await gov.governance.shipper.drain()
    rows = (await gov.admin("GET", "/admin/spend?group_by=key")).json()["rows"]
    assert rows[0]["cost_usd"] >= 80  # the ledger charged it too (40 tokens x 2 USD)


async def test_a_budget_the_counter_store_lost_is_read_from_the_ledger_again(
    gov: Governed,
) -> None:
    # Redis restarted empty (or evicted the key, or failed over): every replica
    # that had seeded the budget must read its spend again, not count from zero.
    heavy = Heavy()
    heavy.gate.set()
    gov.chat.complete = heavy.complete  # type: ignore[method-assign]
    key = await gov.new_key(budget={"max_usd": BUDGET, "period": "day", "hard": True})
    accepted = 0
    for _ in range(60):
        accepted += (await _call(gov, key)).status_code == 200
    assert accepted == 60
    await gov.governance.shipper.drain()  # the ledger holds what was spent
    counters = gov.governance.counters
    assert isinstance(counters, MemoryCounters)
    counters._values.clear()  # what a Redis restarted without its data holds
    while (await _call(gov, key)).status_code == 200:
        accepted += 1
    assert accepted * REAL_COST <= BUDGET  # counted from zero again, 153 calls got through


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
async def test_a_soft_budget_whose_spend_cannot_be_read_leaves_the_other_limits_on(
    tmp_path: Path, policy: str
) -> None:
    # The ledger cannot be read: a soft budget only counts, so it counts from
    # zero, and the key's rpm still holds (the counter is not "unseeded" for ever).
    async def ledger_down(kind: str, name: str, since: float) -> float:
        raise ConnectionError("the database is down")

    async for governed in governed_app(tmp_path, store={"redis_failure": policy}):
        governed.governance.ledger.spent = ledger_down  # type: ignore[method-assign]
        soft = {"max_usd": 1000, "period": "day", "hard": False}
        key = await governed.new_key(budget=soft, limits={"rpm": 2})
        statuses = [(await _call(governed, key)).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]


async def test_a_burst_on_a_fresh_budget_reads_the_ledger_once(gov: Governed) -> None:
    ledger = gov.governance.ledger
    read = ledger.spent
    reads: list[str] = []

    async def counted(kind: str, name: str, since: float) -> float:
        reads.append(name)
        await asyncio.sleep(0.05)  # every call of the burst arrives while it reads
        return await read(kind, name, since)

    ledger.spent = counted  # type: ignore[method-assign]
    key = await gov.new_key(budget={"max_usd": BUDGET, "period": "day", "hard": True})
    statuses = await asyncio.gather(*(_call(gov, key) for _ in range(30)))
    assert [r.status_code for r in statuses] == [200] * 30
    assert len(reads) == 1


async def test_every_call_waiting_on_a_failed_read_is_refused(gov: Governed) -> None:
    async def down(kind: str, name: str, since: float) -> float:
        await asyncio.sleep(0.05)
        raise ConnectionError("the database is down")

    gov.governance.ledger.spent = down  # type: ignore[method-assign]
    key = await gov.new_key(budget={"max_usd": BUDGET, "period": "day", "hard": True})
    statuses = await asyncio.gather(*(_call(gov, key) for _ in range(5)))
    assert [r.status_code for r in statuses] == [503] * 5
