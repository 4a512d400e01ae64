"""``/v1/responses`` in a real server process, through the official openai SDK.

The upstream is the fake upstream (an OpenAI-compatible chat server, so every
request is translated to chat), and the real local model for ``text.format``.
The stored-response table runs the same conformance suite on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import agents
import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseTextDeltaEvent,
)

from gatehouse.store.database import Database
from gatehouse.store.responses import SQLResponseStore, StoredResponse

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import MASTER, OUTPUT_PRICE, admin, create_key, write_config
from .sql_backends import OnPostgres, OnSQLite
from .test_local_response_format import ASK, PERSON, assert_person

ECHO_TOOL: Any = {
    "type": "function",
    "name": "shout",
    "description": "Shout the text back",
    "parameters": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}


@pytest.fixture(scope="module")
def gatehouse(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("responses")
    config = write_config(root / "gatehouse.yaml", upstream, local_chat=True)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


@pytest.fixture
def fresh(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


def sdk(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)


def team_sdk(server: RunningServer, team: str) -> openai.OpenAI:
    return sdk(server, create_key(server, team=team))


def test_create_and_stream_with_typed_events(gatehouse: RunningServer, fresh: FakeUpstream) -> None:
    client = team_sdk(gatehouse, "red")
    created = client.responses.create(model="up", input="one two three", max_output_tokens=20)
    assert created.status == "completed"
    assert created.output_text == "echo: one two three"
    assert created.usage is not None
    assert (created.usage.input_tokens, created.usage.output_tokens) == (5, 4)
    assert fresh.requests[-1].body["max_completion_tokens"] == 20

    with client.responses.stream(model="up", input="four five six") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert "".join(d.delta for d in deltas) == "echo: four five six"
    assert len(deltas) == 4  # one per upstream chunk
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert final.output_text == "echo: four five six"
    assert final.usage is not None
    assert final.usage.output_tokens == 4  # usage reaches the client even though it did not ask
    assert client.responses.retrieve(final.id).output_text == final.output_text


def test_a_chain_of_three_turns_reaches_the_upstream_whole(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    client = team_sdk(gatehouse, "red")
    first = client.responses.create(model="up", input="alpha", instructions="Be an echo.")
    second = client.responses.create(model="up", input="beta", previous_response_id=first.id)
    with client.responses.stream(
        model="up", input="gamma", previous_response_id=second.id
    ) as stream:
        third = stream.get_final_response()
    assert third.output_text == "echo: gamma"
    assert [m["content"] for m in fresh.requests[-1].body["messages"]] == [
        "alpha",
        "echo: alpha",
        "beta",
        "echo: beta",
        "gamma",
    ]
    assert fresh.requests[0].body["messages"][0] == {"role": "system", "content": "Be an echo."}
    items = client.responses.input_items.list(third.id, order="asc").data
    assert [getattr(i, "role", None) for i in items] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]


@pytest.mark.parametrize("streamed", [False, True])
def test_a_function_tool_round_trip(
    gatehouse: RunningServer, fresh: FakeUpstream, streamed: bool
) -> None:
    client = team_sdk(gatehouse, "red")
    fresh.then(Behaviour("tool_call"))
    if streamed:
        with client.responses.stream(model="up", input="quiet words", tools=[ECHO_TOOL]) as stream:
            events = list(stream)
            asked = stream.get_final_response()
        done = [e for e in events if isinstance(e, ResponseFunctionCallArgumentsDoneEvent)]
        assert [json.loads(e.arguments) for e in done] == [{"text": "quiet words"}]
        kinds = [e.type for e in events]
        assert kinds.count("response.function_call_arguments.delta") == 2
    else:
        asked = client.responses.create(model="up", input="quiet words", tools=[ECHO_TOOL])
    calls = [item for item in asked.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "shout"
    assert json.loads(call.arguments) == {"text": "quiet words"}
    assert fresh.requests[-1].body["tools"][0]["function"]["name"] == "shout"

    answer = client.responses.create(
        model="up",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "QUIET WORDS"}],
        tools=[ECHO_TOOL],
    )
    messages = fresh.requests[-1].body["messages"]
    assert messages[-2]["tool_calls"][0]["id"] == call.call_id
    assert messages[-2]["tool_calls"][0]["function"]["arguments"] == call.arguments
    assert messages[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "QUIET WORDS"}
    assert answer.output_text == "echo: quiet words"  # the fake echoes the last user message


def test_json_schema_on_the_local_model_is_schema_valid(gatehouse: RunningServer) -> None:
    client = team_sdk(gatehouse, "red")
    created = client.responses.create(
        model="local/smollm2",
        input=ASK,
        temperature=0,
        max_output_tokens=120,
        text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
    )
    assert created.status == "completed"
    assert_person(created.output_text)


def test_an_upstream_cut_mid_stream_ends_with_error_and_response_failed(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    client = team_sdk(gatehouse, "red")
    fresh.then(Behaviour("cut", cut_after=3))
    with client.responses.stream(model="up", input="a b c d e f") as stream:
        kinds = [event.type for event in stream]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]


def assert_only_the_owner_reaches(
    server: RunningServer, other_team: openai.OpenAI, response_id: str, *, model: str
) -> None:
    """Another team gets 404 on a stored response, as a chain too; a key without
    the ``chat`` scope gets 403."""
    for refused in (
        lambda: other_team.responses.retrieve(response_id),
        lambda: other_team.responses.input_items.list(response_id),
        lambda: other_team.responses.delete(response_id),
        lambda: other_team.responses.create(
            model=model, input="x", previous_response_id=response_id
        ),
    ):
        with pytest.raises(openai.NotFoundError):
            refused()
    embed_only = sdk(server, create_key(server, scopes=["embeddings"]))
    with pytest.raises(openai.PermissionDeniedError):
        embed_only.responses.create(model=model, input="no")
    with pytest.raises(openai.PermissionDeniedError):
        embed_only.responses.retrieve(response_id)


def test_teams_scopes_and_the_ledger(gatehouse: RunningServer, fresh: FakeUpstream) -> None:
    red_key = create_key(gatehouse, team="ledger-red")
    red, blue = sdk(gatehouse, red_key), team_sdk(gatehouse, "blue")
    raw = red.responses.with_raw_response.create(model="up", input="count me")
    created = raw.parse()
    assert_only_the_owner_reaches(gatehouse, blue, created.id, model="up")

    request_id = raw.headers["x-request-id"]
    deadline = time.monotonic() + 30
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:
        events = admin(gatehouse, "GET", "/admin/ledger?limit=10000").json()["events"]
        mine = [e for e in events if e["request_id"] == request_id]
        time.sleep(0.1)
    assert len(mine) == 1
    assert (mine[0]["tag"], mine[0]["team"], mine[0]["status"]) == ("responses", "ledger-red", "ok")
    assert mine[0]["cost_usd"] == 3 * OUTPUT_PRICE  # "echo: count me": 3 completion tokens


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_openai_agents_sdk_agent_runs_a_function_tool(
    gatehouse: RunningServer, fresh: FakeUpstream, streamed: bool
) -> None:
    agents.set_tracing_disabled(True)  # its traces would go to OpenAI's servers
    calls: list[str] = []

    @agents.function_tool
    def shout(text: str) -> str:
        """Shout the text back."""
        calls.append(text)
        return text.upper()

    client = openai.AsyncOpenAI(
        api_key=create_key(gatehouse, team="agents"),
        base_url=f"{gatehouse.base_url}/v1",
        max_retries=0,
    )
    model = agents.OpenAIResponsesModel(model="up", openai_client=client)
    agent = agents.Agent(name="shouter", instructions="Shout.", tools=[shout], model=model)
    fresh.then(Behaviour("tool_call"))
    if streamed:
        run = agents.Runner.run_streamed(agent, "hello agent")
        async for _ in run.stream_events():
            pass
        final = run.final_output
    else:
        final = (await agents.Runner.run(agent, "hello agent")).final_output
    await client.close()
    assert calls == ["hello agent"]
    assert final == "echo: hello agent"
    messages = fresh.requests[-1].body["messages"]
    assert messages[-1] == {
        "role": "tool",
        "tool_call_id": messages[-2]["tool_calls"][0]["id"],
        "content": "HELLO AGENT",
    }


# -- the store on both SQL backends -------------------------------------------------


def record(response_id: str, owner: str, **fields: Any) -> StoredResponse:
    values: dict[str, Any] = {
        "id": response_id,
        "owner": owner,
        "created_at": 1_780_000_000.0,
        "model": "up",
        "status": "completed",
        "previous_response_id": None,
        "response": {"id": response_id, "output": [{"text": "héllo ✓"}], "metadata": {}},
        "input_items": [{"type": "message", "id": "msg_1", "content": [{"text": "ünïcode"}]}],
        **fields,
    }
    return StoredResponse(**values)


class ResponseStoreConformance:
    async def test_a_response_round_trips_for_its_owner_only(self, database: Database) -> None:
        store = SQLResponseStore(database)
        stored = record("resp_1", "team:red", previous_response_id="resp_0")
        await store.put(stored)
        assert await store.get("resp_1", "team:red") == stored
        assert await store.get("resp_1", "team:blue") is None
        assert await store.get("resp_missing", "team:red") is None

    async def test_delete_is_owner_scoped_and_final(self, database: Database) -> None:
        store = SQLResponseStore(database)
        await store.put(record("resp_2", "key:abc"))
        assert not await store.delete("resp_2", "team:red")
        assert await store.get("resp_2", "key:abc") is not None
        assert await store.delete("resp_2", "key:abc")
        assert not await store.delete("resp_2", "key:abc")
        assert await store.get("resp_2", "key:abc") is None


class TestSQLiteStore(OnSQLite, ResponseStoreConformance):
    pass


class TestPostgresStore(OnPostgres, ResponseStoreConformance):
    pass
