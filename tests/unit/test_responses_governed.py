"""``/v1/responses`` in a governed in-process app, through the official openai SDK.

The route runs as its caller through the whole pipeline: the ledger records
it (tag ``responses``), a budget refuses it, a key without the ``chat`` scope
is refused, and stored responses belong to the caller's team alone.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from gatehouse.core.errors import UpstreamError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.store.database import Database, database_url
from gatehouse.store.responses import SQLResponseStore

from .fakes import RequestKeepingChat
from .governed import Governed, governed_app


@pytest.fixture
async def chat() -> RequestKeepingChat:
    return RequestKeepingChat()


@pytest.fixture
async def gov(tmp_path: Path, chat: RequestKeepingChat) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path, providers=[chat]):
        yield governed


def turns(request: ChatCompletionRequest) -> list[tuple[str, str]]:
    return [(m.role, m.text()) for m in request.messages]


async def test_a_three_turn_chain_sends_every_earlier_turn_upstream(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    sdk = gov.sdk(await gov.new_key(team="red"))
    first = await sdk.responses.create(
        model="test/rec-chat", input="one", instructions="Only for the first turn."
    )
    second = await sdk.responses.create(
        model="test/rec-chat", input="two", previous_response_id=first.id
    )
    third = await sdk.responses.create(
        model="test/rec-chat", input="three", previous_response_id=second.id
    )
    assert third.output_text == "three"
    assert third.previous_response_id == second.id
    # Instructions do not carry over a chain (as OpenAI's do not).
    assert turns(chat.seen[0]) == [("system", "Only for the first turn."), ("user", "one")]
    assert turns(chat.seen[2]) == [
        ("user", "one"),
        ("assistant", "one"),
        ("user", "two"),
        ("assistant", "two"),
        ("user", "three"),
    ]
    listed = await sdk.responses.input_items.list(third.id, order="asc")
    assert [(i.type, getattr(i, "role", None)) for i in listed.data] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    page = await sdk.responses.input_items.list(third.id, limit=2)
    assert page.has_more
    assert page.first_id == listed.data[-1].id
    assert page.last_id == listed.data[-2].id


async def test_streamed_responses_parse_as_typed_events_and_are_stored(gov: Governed) -> None:
    sdk = gov.sdk(await gov.new_key(team="red"))
    async with sdk.responses.stream(model="test/rec-chat", input="stream these words") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") == 3
    assert final.output_text == "streamthesewords"  # EchoChat streams words without spaces
    assert final.usage is not None
    assert final.usage.output_tokens == 3
    stored = await sdk.responses.retrieve(final.id)
    assert stored.output_text == final.output_text
    assert stored.usage == final.usage


async def test_another_team_gets_404_everywhere_and_delete_is_final(gov: Governed) -> None:
    red = gov.sdk(await gov.new_key(team="red"))
    red_again = gov.sdk(await gov.new_key(team="red"))
    blue = gov.sdk(await gov.new_key(team="blue"))
    created = await red.responses.create(model="test/rec-chat", input="secret plans")
    assert (await red_again.responses.retrieve(created.id)).output_text == "secret plans"
    for call in (
        blue.responses.retrieve(created.id),
        blue.responses.input_items.list(created.id),
        blue.responses.delete(created.id),
        blue.responses.create(model="test/rec-chat", input="x", previous_response_id=created.id),
    ):
        with pytest.raises(openai.NotFoundError):
            await call
    await red.responses.delete(created.id)
    with pytest.raises(openai.NotFoundError):
        await red.responses.retrieve(created.id)


async def test_store_false_is_not_kept(gov: Governed) -> None:
    sdk = gov.sdk(await gov.new_key(team="red"))
    created = await sdk.responses.create(model="test/rec-chat", input="forget me", store=False)
    assert created.store is False
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(created.id)


async def test_a_key_without_the_chat_scope_is_refused(gov: Governed) -> None:
    sdk = gov.sdk(await gov.new_key(scopes=["embeddings"]))
    with pytest.raises(openai.PermissionDeniedError):
        await sdk.responses.create(model="test/rec-chat", input="hi")


async def test_the_ledger_records_it_and_a_budget_refuses_it(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    sdk = gov.sdk(await gov.new_key(team="red"))
    await sdk.responses.create(model="default", input="metered")
    broke = gov.sdk(await gov.new_key(budget={"max_usd": 1, "period": "day", "hard": True}))
    with pytest.raises(openai.RateLimitError) as refused:
        await broke.responses.create(model="default", input="too dear")
    assert refused.value.code == "budget_exceeded"
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger")).json()["events"]
    assert [(e["tag"], e["status"], e["team"]) for e in events] == [
        ("responses", "ok", "red"),
        ("responses", "budget_exceeded", None),
    ]
    assert events[0]["cost_usd"] == 3  # 1 prompt token at 1 USD, 1 completion token at 2


async def test_a_malformed_request_is_a_400_naming_the_field(gov: Governed) -> None:
    sdk = gov.sdk(await gov.new_key(team="red"))
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(
            model="test/rec-chat",
            input=[{"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]}],
        )
    assert refused.value.param == "input[0].content[0].type"


async def test_a_failure_mid_stream_is_response_failed_and_stored_as_failed(
    gov: Governed, chat: RequestKeepingChat
) -> None:
    sdk = gov.sdk(await gov.new_key(team="red"))
    chat.fail_mid_stream = UpstreamError("the upstream went away")
    async with sdk.responses.stream(model="test/rec-chat", input="doomed words") as stream:
        events = [event async for event in stream]
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1].response
    assert failed.error is not None
    assert failed.error.code == "server_error"
    assert (await sdk.responses.retrieve(failed.id)).status == "failed"


async def test_the_guard_applies(tmp_path: Path, chat: RequestKeepingChat) -> None:
    email = "ana.lopez@clinic.example"
    guard = {"enabled": True, "entities": {"EMAIL": "block"}}
    async for gov in governed_app(tmp_path, providers=[chat], guard=guard):
        sdk = gov.sdk(await gov.new_key(team="red"))
        with pytest.raises(openai.BadRequestError) as blocked:
            await sdk.responses.create(model="test/rec-chat", input=f"write to {email}")
        assert blocked.value.code == "content_policy_violation"
        assert chat.seen == []


async def test_a_store_that_cannot_be_reached_is_a_503_never_a_silent_loss(
    gov: Governed, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    unmigrated = Database(database_url(None, tmp_path / "empty"))  # no responses table
    app = gov.http._transport.app  # type: ignore[attr-defined]
    app.state.response_store = SQLResponseStore(unmigrated)
    sdk = gov.sdk(await gov.new_key(team="red"))
    try:
        with pytest.raises(openai.InternalServerError) as refused:
            await sdk.responses.create(model="test/rec-chat", input="keep me")
        assert refused.value.status_code == 503
        assert refused.value.code == "service_unavailable"
        async with sdk.responses.stream(model="test/rec-chat", input="keep me too") as stream:
            kinds = [event.type async for event in stream]
        # The answer streamed whole, then the failure to store it.
        assert kinds[-4:] == [
            "response.content_part.done",
            "response.output_item.done",
            "error",
            "response.failed",
        ]
        # Not stored, so the same request with store=false succeeds.
        kept = await sdk.responses.create(model="test/rec-chat", input="free", store=False)
        assert kept.output_text == "free"
    finally:
        await unmigrated.close()
