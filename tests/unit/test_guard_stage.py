"""The guard stage without HTTP: what reaches the next stage, and what comes back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatehouse.core.config import GuardConfig
from gatehouse.core.errors import GuardrailViolationError
from gatehouse.core.principal import Principal
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    Embedding,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
)
from gatehouse.gateway.guard_stage import GuardStage, guard_stages
from gatehouse.gateway.pipeline import CallContext, Result
from gatehouse.guard import Policy

EMAIL = "jo.e@example.com"
# Restored into a tool call's JSON arguments, its newlines must be escaped.
PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    + "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" * 2
    + "\n-----END PRIVATE KEY-----"
)
USAGE = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)


def _stage() -> GuardStage:
    return GuardStage(Policy({"EMAIL": "mask", "SECRET": "mask", "US_SSN": "block"}))


def _chat(content: str, **extra: Any) -> CallContext:
    request = ChatCompletionRequest(
        model="m", messages=[ChatMessage(role="user", content=content)], **extra
    )
    return CallContext(request_id="r", endpoint="chat", request=request)


def _call(arguments: str, *, first: bool = True) -> dict[str, Any]:
    if not first:
        return {"index": 0, "function": {"arguments": arguments}}
    return {
        "index": 0,
        "id": "call_0",
        "type": "function",
        "function": {"name": "send", "arguments": arguments},
    }


def _chunk(delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="c", created=0, model="m", choices=[ChunkChoice(delta=delta, finish_reason=finish)]
    )


def test_no_stage_without_a_policy() -> None:
    assert guard_stages(GuardConfig()) == []
    assert guard_stages(GuardConfig(enabled=True)) == []
    config = GuardConfig.model_validate({"enabled": True, "entities": {"EMAIL": "redact"}})
    assert len(guard_stages(config)) == 1


async def test_a_placeholder_in_any_message_is_not_reused() -> None:
    seen: list[ChatCompletionRequest] = []

    async def upstream(ctx: CallContext) -> Result:
        assert isinstance(ctx.request, ChatCompletionRequest)
        seen.append(ctx.request)
        message = AssistantMessage(content="[EMAIL_1] / [EMAIL_2]")
        choice = Choice(message=message, finish_reason="stop")
        return ChatCompletion(id="c", created=0, model="m", usage=USAGE, choices=[choice])

    request = ChatCompletionRequest(
        model="m",
        messages=[
            ChatMessage(role="user", content=f"mail {EMAIL}"),
            ChatMessage(role="user", content="fill the [EMAIL_1] slot"),
        ],
    )
    ctx = CallContext(request_id="r", endpoint="chat", request=request)
    result = await _stage()(ctx, upstream)
    assert seen[0].messages[0].content == "mail [EMAIL_2]"
    assert isinstance(result, ChatCompletion)
    assert result.choices[0].message.content == f"[EMAIL_1] / {EMAIL}"


async def test_tool_call_arguments_are_protected_and_restored_as_json() -> None:
    seen: list[ChatCompletionRequest] = []

    async def upstream(ctx: CallContext) -> Result:
        assert isinstance(ctx.request, ChatCompletionRequest)
        seen.append(ctx.request)
        arguments = json.dumps({"to": "[EMAIL_1]", "key": "[SECRET_1]"})
        message = AssistantMessage(content=None, tool_calls=[_call(arguments)])
        choice = Choice(message=message, finish_reason="tool_calls")
        return ChatCompletion(id="c", created=0, model="m", usage=USAGE, choices=[choice])

    result = await _stage()(_chat(f"write to {EMAIL} with\n{PEM}"), upstream)
    assert seen[0].messages[0].content == "write to [EMAIL_1] with\n[SECRET_1]"
    assert isinstance(result, ChatCompletion)
    calls = result.choices[0].message.tool_calls
    assert calls is not None
    assert json.loads(calls[0]["function"]["arguments"]) == {"to": EMAIL, "key": PEM}


async def test_streamed_tool_call_arguments_are_restored_across_chunks() -> None:
    arguments = json.dumps({"to": "[EMAIL_1]", "key": "[SECRET_1]"})
    pieces = [arguments[i : i + 4] for i in range(0, len(arguments), 4)]

    async def chunks() -> AsyncIterator[ChatCompletionChunk]:
        for n, piece in enumerate(pieces):
            yield _chunk(Delta(tool_calls=[_call(piece, first=n == 0)]))
        yield _chunk(Delta(), finish="tool_calls")

    async def upstream(ctx: CallContext) -> Result:
        return chunks()

    result = await _stage()(_chat(f"write to {EMAIL} with {PEM}", stream=True), upstream)
    assert not isinstance(result, ChatCompletion | EmbeddingResponse)
    text = ""
    async for chunk in result:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or []:
                text += call["function"]["arguments"]
    assert json.loads(text) == {"to": EMAIL, "key": PEM}


async def test_a_stream_ending_without_a_finish_releases_what_it_held() -> None:
    async def chunks() -> AsyncIterator[ChatCompletionChunk]:
        for piece in ["mail [EM", "AIL_1] and [EMA"]:
            yield _chunk(Delta(content=piece))

    async def upstream(ctx: CallContext) -> Result:
        return chunks()

    result = await _stage()(_chat(f"to {EMAIL}", stream=True), upstream)
    assert not isinstance(result, ChatCompletion | EmbeddingResponse)
    text = ""
    async for chunk in result:
        text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text == f"mail {EMAIL} and [EMA"


async def test_embedding_inputs_are_protected_and_blocks_stop_the_call() -> None:
    seen: list[EmbeddingRequest | ChatCompletionRequest] = []

    async def upstream(ctx: CallContext) -> Result:
        seen.append(ctx.request)
        assert isinstance(ctx.request, EmbeddingRequest)
        data = [Embedding(index=i, embedding=[0.0]) for i in range(len(ctx.request.texts()))]
        return EmbeddingResponse(data=data, model="e", usage=USAGE)

    request = EmbeddingRequest(model="e", input=[f"about {EMAIL}", "plain"])
    await _stage()(CallContext(request_id="r", endpoint="embeddings", request=request), upstream)
    assert isinstance(seen[0], EmbeddingRequest)
    assert seen[0].input == ["about [EMAIL_1]", "plain"]
    with pytest.raises(GuardrailViolationError) as caught:
        await _stage()(_chat("SSN 536-22-1234"), upstream)
    assert caught.value.error_code == "content_policy_violation"
    assert caught.value.http_status == 400
    assert caught.value.rule == "entities.US_SSN"
    assert "536" not in caught.value.message
    assert len(seen) == 1


def _content_stage() -> GuardStage:
    config = GuardConfig.model_validate(
        {
            "enabled": True,
            "entities": {"EMAIL": "mask"},
            "output_window": 16,
            "content": [
                {"name": "weapons", "keywords": ["pipe bomb"], "apply_to": ["output"]},
                {"name": "codename", "keywords": ["Falcon"], "action": "redact"},
            ],
        }
    )
    return GuardStage(Policy.from_config(config))


async def test_an_answer_is_cut_at_a_blocked_category() -> None:
    async def upstream(ctx: CallContext) -> Result:
        assert isinstance(ctx.request, ChatCompletionRequest)
        assert ctx.request.messages[0].content == "tell [EMAIL_1] about [REDACTED:codename]"
        message = AssistantMessage(content="Dear [EMAIL_1], Falcon uses a pipe bomb. Bye")
        choice = Choice(message=message, finish_reason="stop")
        return ChatCompletion(id="c", created=0, model="m", usage=USAGE, choices=[choice])

    result = await _content_stage()(_chat(f"tell {EMAIL} about Falcon"), upstream)
    assert isinstance(result, ChatCompletion)
    assert result.choices[0].message.content == f"Dear {EMAIL}, [REDACTED:codename] uses a "
    assert result.choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("size", [1, 4, 7, 50])
async def test_a_streamed_answer_is_cut_and_the_upstream_closed(size: int) -> None:
    answer = "Dear [EMAIL_1], Falcon says: a pipe bomb is " + "never mentioned again. " * 5
    closed: list[bool] = []

    async def chunks() -> AsyncIterator[ChatCompletionChunk]:
        try:
            for i in range(0, len(answer), size):
                yield _chunk(Delta(content=answer[i : i + size]))
            yield _chunk(Delta(), finish="stop")
        finally:
            closed.append(True)

    async def upstream(ctx: CallContext) -> Result:
        return chunks()

    result = await _content_stage()(_chat(f"to {EMAIL}", stream=True), upstream)
    assert not isinstance(result, ChatCompletion | EmbeddingResponse)
    text, finishes = "", []
    async for chunk in result:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finishes.append(choice.finish_reason)
    assert text == f"Dear {EMAIL}, [REDACTED:codename] says: a "
    assert [f for f in finishes if f] == ["content_filter"]
    assert closed == [True]


async def test_the_callers_team_and_the_model_pick_the_policy() -> None:
    config = GuardConfig.model_validate(
        {
            "enabled": True,
            "entities": {"EMAIL": "mask"},
            "teams": {"hr": {"entities": {"EMAIL": "allow"}}},
            "keys": {"k-strict": {"entities": {"EMAIL": "redact"}}},
            "models": {"vault": {"entities": {"EMAIL": "block"}}},
        }
    )
    [stage] = guard_stages(config)
    seen: list[str | None] = []

    async def upstream(ctx: CallContext) -> Result:
        assert isinstance(ctx.request, ChatCompletionRequest)
        seen.append(ctx.request.messages[0].text())
        message = AssistantMessage(content="ok")
        choice = Choice(message=message, finish_reason="stop")
        return ChatCompletion(id="c", created=0, model="m", usage=USAGE, choices=[choice])

    for team, key_id in ((None, None), ("hr", "k-plain"), ("hr", "k-strict")):
        ctx = _chat(f"to {EMAIL}")
        ctx.principal = Principal(id="k", kind="key", team=team, key_id=key_id)
        await stage(ctx, upstream)
    assert seen == ["to [EMAIL_1]", f"to {EMAIL}", "to [EMAIL]"]
    ctx = _chat(f"to {EMAIL}")
    ctx.request = ctx.request.model_copy(update={"model": "vault"})
    ctx.principal = Principal(id="k", kind="key", team="hr")
    with pytest.raises(GuardrailViolationError):
        await stage(ctx, upstream)
    assert len(seen) == 3


def _output_stage(window: int = 64) -> GuardStage:
    config = GuardConfig.model_validate(
        {
            "enabled": True,
            "entities": {"EMAIL": "mask"},
            "output_entities": {"EMAIL": "redact", "CREDIT_CARD": "block"},
            "output_window": window,
        }
    )
    return GuardStage(Policy.from_config(config))


async def test_entity_rules_on_answers_spare_the_callers_own_values() -> None:
    async def upstream(ctx: CallContext) -> Result:
        message = AssistantMessage(
            content="I wrote to [EMAIL_1] and cc'd boss@corp.example. Card 4111 1111 1111 1111."
        )
        choice = Choice(message=message, finish_reason="stop")
        return ChatCompletion(id="c", created=0, model="m", usage=USAGE, choices=[choice])

    ctx = _chat(f"mail {EMAIL}")
    result = await _output_stage()(ctx, upstream)
    assert isinstance(result, ChatCompletion)
    # The caller's own address comes back; one the model wrote is redacted; a card cuts.
    assert result.choices[0].message.content == f"I wrote to {EMAIL} and cc'd [EMAIL]. Card "
    assert result.choices[0].finish_reason == "content_filter"
    assert set(ctx.guard) == {
        ("entities.EMAIL", "mask"),
        ("output.EMAIL", "redact"),
        ("output.CREDIT_CARD", "block"),
    }


@pytest.mark.parametrize("size", [1, 3, 8, 40])
async def test_entity_rules_on_streamed_answers(size: int) -> None:
    answer = "Hello [EMAIL_1], write to boss@corp.example or ops@corp.example today. Bye."

    async def chunks() -> AsyncIterator[ChatCompletionChunk]:
        for i in range(0, len(answer), size):
            yield _chunk(Delta(content=answer[i : i + size]))
        yield _chunk(Delta(), finish="stop")

    async def upstream(ctx: CallContext) -> Result:
        return chunks()

    result = await _output_stage()(_chat(f"to {EMAIL}", stream=True), upstream)
    assert not isinstance(result, ChatCompletion | EmbeddingResponse)
    text = ""
    async for chunk in result:
        text += "".join(c.delta.content or "" for c in chunk.choices)
    assert text == f"Hello {EMAIL}, write to [EMAIL] or [EMAIL] today. Bye."
