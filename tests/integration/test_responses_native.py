"""``/v1/responses`` on deployments that speak it (``api: responses``), through the openai SDK.

The fake upstream's ``/v1/responses`` answers; gatehouse still stores and
chains (the upstream is sent ``store: false`` and every turn's items, never
gatehouse's ids), meters the upstream's usage and refuses other teams.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseTextDeltaEvent,
)

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import MASTER, create_key
from .test_responses_api import ECHO_TOOL, assert_only_the_owner_reaches, fresh, sdk, team_sdk
from .test_usage_streams import ledger

__all__ = ["fresh"]  # a fixture of test_responses_api's, used here too

IN, CACHED, OUT, REASONING = 1e-6, 2e-7, 4e-6, 8e-6


@pytest.fixture(scope="module")
def gatehouse(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("responses-native")
    base = f"{upstream.base_url}/v1"
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
local:
  chat: {{enabled: false}}
  embeddings: {{enabled: false}}
aliases: {{}}
models:
  - name: native
    deployments:
      - provider: openai_compat
        api: responses
        model: native-model
        base_url: '{base}'
        input_cost_per_token: {IN}
        cache_read_input_token_cost: {CACHED}
        output_cost_per_token: {OUT}
        output_cost_per_reasoning_token: {REASONING}
  - name: mixed
    num_retries: 3
    deployments:
      - provider: openai_compat
        api: responses
        model: mixed-native
        base_url: '{base}'
      - provider: openai_compat
        model: mixed-chat
        base_url: '{base}'
  - name: chat-only
    deployments:
      - {{provider: openai_compat, model: chat-only, base_url: '{base}'}}
"""
    )
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    """The body of the upstream's last ``/v1/responses`` request."""
    bodies = [r.body for r in upstream.requests if r.path == "/v1/responses"]
    assert bodies, [r.path for r in upstream.requests]
    return bodies[-1]


def test_create_stream_and_a_chain_go_to_the_upstreams_responses(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    client = team_sdk(gatehouse, "red")
    first = client.responses.create(
        model="native", input="alpha", instructions="Be an echo.", max_output_tokens=30
    )
    assert first.status == "completed"
    assert first.output_text == "echo: alpha"
    assert first.id.startswith("resp_")
    assert first.id != "resp_fake_1"
    assert first.model == "native"
    body = sent(fresh)
    assert body["model"] == "native-model"
    assert body["store"] is False
    assert body["instructions"] == "Be an echo."
    assert body["max_output_tokens"] == 30
    assert "stream" not in body or body["stream"] is False
    assert [(i["type"], i["role"]) for i in body["input"]] == [("message", "user")]
    assert fresh.count("/chat/completions") == 0

    with client.responses.stream(
        model="native", input="beta", previous_response_id=first.id
    ) as stream:
        events = list(stream)
        second = stream.get_final_response()
    body = sent(fresh)
    assert "previous_response_id" not in body
    assert body["store"] is False
    assert body["stream"] is True
    texts = [
        "".join(part["text"] for part in item["content"]) for item in body["input"]
    ]  # the prior turn's items, then this one's
    assert texts == ["alpha", "echo: alpha", "beta"]
    assert not [item for item in body["input"] if "id" in item]  # unknown to a store-less upstream
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if isinstance(e, ResponseTextDeltaEvent)]
    assert "".join(d.delta for d in deltas) == "echo: beta"
    assert isinstance(events[-1], ResponseCompletedEvent)
    assert events[0].type == "response.created"
    assert {e.response.id for e in events if hasattr(e, "response")} == {second.id}
    assert second.previous_response_id == first.id
    assert second.output_text == "echo: beta"

    third = client.responses.create(model="native", input="gamma", previous_response_id=second.id)
    texts = ["".join(p["text"] for p in item["content"]) for item in sent(fresh)["input"]]
    assert texts == ["alpha", "echo: alpha", "beta", "echo: beta", "gamma"]
    assert client.responses.retrieve(third.id).output_text == "echo: gamma"
    items = client.responses.input_items.list(third.id, order="asc").data
    assert [getattr(i, "role", None) for i in items] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert fresh.count("/chat/completions") == 0


@pytest.mark.parametrize("streamed", [False, True])
def test_a_function_tool_round_trip_in_native_mode(
    gatehouse: RunningServer, fresh: FakeUpstream, streamed: bool
) -> None:
    client = team_sdk(gatehouse, "red")
    fresh.then(Behaviour("tool_call"))
    if streamed:
        with client.responses.stream(
            model="native", input="quiet words", tools=[ECHO_TOOL]
        ) as stream:
            events = list(stream)
            asked = stream.get_final_response()
        done = [e for e in events if isinstance(e, ResponseFunctionCallArgumentsDoneEvent)]
        assert [json.loads(e.arguments) for e in done] == [{"text": "quiet words"}]
    else:
        asked = client.responses.create(model="native", input="quiet words", tools=[ECHO_TOOL])
    assert sent(fresh)["tools"] == [ECHO_TOOL]  # the Responses tool shape, untranslated
    calls = [item for item in asked.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert (call.name, json.loads(call.arguments)) == ("shout", {"text": "quiet words"})

    answer = client.responses.create(
        model="native",
        previous_response_id=asked.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "QUIET"}],
        tools=[ECHO_TOOL],
    )
    given = sent(fresh)["input"]
    assert [i["type"] for i in given] == ["message", "function_call", "function_call_output"]
    assert given[1]["call_id"] == given[2]["call_id"] == call.call_id
    assert given[1]["arguments"] == call.arguments
    assert given[2]["output"] == "QUIET"
    assert answer.output_text == "echo: quiet words"
    assert fresh.count("/chat/completions") == 0


@pytest.mark.parametrize("streamed", [False, True])
def test_the_ledger_bills_the_upstreams_usage_buckets(
    gatehouse: RunningServer, fresh: FakeUpstream, streamed: bool
) -> None:
    fresh.usage_overrides["responses"] = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 17,
    }
    key = create_key(gatehouse, team="native-ledger")
    client = sdk(gatehouse, key)
    if streamed:
        with client.responses.with_streaming_response.create(
            model="native", input="bill me", stream=True
        ) as raw:
            request_id = raw.headers["x-request-id"]
            assert b"response.completed" in raw.read()
    else:
        raw_created = client.responses.with_raw_response.create(model="native", input="bill me")
        request_id = raw_created.headers["x-request-id"]
        usage = raw_created.parse().usage
        assert usage is not None
        assert (usage.input_tokens, usage.output_tokens) == (10, 7)
        assert usage.input_tokens_details.cached_tokens == 4
        assert usage.output_tokens_details.reasoning_tokens == 3
    (row,) = ledger(gatehouse, key)
    assert row["request_id"] == request_id
    assert (row["tag"], row["team"], row["status"]) == ("responses", "native-ledger", "ok")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 7)
    assert (row["cached_tokens"], row["reasoning_tokens"]) == (4, 3)
    assert row["cost_usd"] == pytest.approx(6 * IN + 4 * CACHED + 4 * OUT + 3 * REASONING)


def test_another_team_is_refused(gatehouse: RunningServer, fresh: FakeUpstream) -> None:
    red, blue = team_sdk(gatehouse, "red"), team_sdk(gatehouse, "blue")
    created = red.responses.create(model="native", input="mine")
    assert_only_the_owner_reaches(gatehouse, blue, created.id, model="native")
    assert fresh.count("/v1/responses") == 1  # the refused chain never reached the upstream


@pytest.mark.parametrize("streamed", [False, True])
@pytest.mark.parametrize("failing", ["mixed-native", "mixed-chat"])
def test_a_group_mixing_native_and_chat_deployments_calls_each_its_own_way(
    gatehouse: RunningServer, fresh: FakeUpstream, failing: str, streamed: bool
) -> None:
    fresh.by_model[failing] = Behaviour("status", status=500)
    client = team_sdk(gatehouse, "red")
    if streamed:
        with client.responses.stream(model="mixed", input="either way") as stream:
            kinds = [event.type for event in stream]
            answered = stream.get_final_response()
        assert kinds[0] == "response.created"
        assert kinds[-1] == "response.completed"
    else:
        answered = client.responses.create(model="mixed", input="either way")
    assert answered.output_text == "echo: either way"
    paths = {r.model: r.path for r in fresh.requests}
    assert paths.get("mixed-native", "/v1/responses") == "/v1/responses"
    assert paths.get("mixed-chat", "/v1/chat/completions") == "/v1/chat/completions"
    worked = "mixed-chat" if failing == "mixed-native" else "mixed-native"
    assert fresh.models()[-1] == worked
    assert client.responses.retrieve(answered.id).output_text == "echo: either way"


def test_an_upstream_cut_mid_stream_ends_with_error_and_response_failed(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    client = team_sdk(gatehouse, "red")
    fresh.then(Behaviour("cut", cut_after=5))
    with client.responses.stream(model="native", input="a b c d e f") as stream:
        events = list(stream)
    kinds = [event.type for event in events]
    assert "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    failed = events[-1]
    assert failed.type == "response.failed"
    assert client.responses.retrieve(failed.response.id).status == "failed"


@pytest.fixture(scope="module")
def guarded(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("responses-native-guard")
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
local: {{chat: {{enabled: false}}, embeddings: {{enabled: false}}}}
models:
  - name: native
    deployments:
      - provider: openai_compat
        api: responses
        model: g-native
        base_url: '{upstream.base_url}/v1'
guard:
  enabled: true
  entities: {{EMAIL: mask}}
  content:
    - {{name: leaks, keywords: [internal only], apply_to: [output]}}
"""
    )
    server = start_server(root / "data", config=config)
    yield server
    stop_server(server)


def test_a_guard_that_changes_the_request_keeps_it_on_the_translated_path(
    guarded: RunningServer, fresh: FakeUpstream
) -> None:
    client = guarded.openai()
    masked = client.responses.create(model="native", input="write to ann@example.com")
    assert [r.path for r in fresh.requests] == ["/v1/chat/completions"]
    assert "ann@example.com" not in json.dumps(fresh.requests[0].body)
    assert masked.output_text == "echo: write to ann@example.com"  # the mask put back

    plain = client.responses.create(model="native", input="nothing to hide")
    assert fresh.requests[-1].path == "/v1/responses"
    assert plain.output_text == "echo: nothing to hide"
    with client.responses.stream(model="native", input="still nothing") as stream:
        kinds = [event.type for event in stream]
    assert fresh.requests[-1].path == "/v1/responses"
    assert kinds[-1] == "response.completed"


@pytest.mark.parametrize("streamed", [False, True])
def test_an_output_policy_still_judges_a_native_answer(
    guarded: RunningServer, fresh: FakeUpstream, streamed: bool
) -> None:
    client = guarded.openai()
    if streamed:
        with client.responses.stream(model="native", input="this is internal only") as stream:
            events = list(stream)
        assert fresh.requests[-1].path == "/v1/responses"
        assert events[-1].type == "response.incomplete"
        answer = events[-1].response
        assert [e.sequence_number for e in events] == list(range(len(events)))
        streamed_text = "".join(
            getattr(e, "delta", "") for e in events if e.type.endswith("text.delta")
        )
        assert "internal only" not in streamed_text
    else:
        answer = client.responses.create(model="native", input="this is internal only")
        assert fresh.requests[-1].path == "/v1/responses"
    assert "internal only" not in answer.output_text
    assert answer.status == "incomplete"
    assert answer.incomplete_details is not None
    assert answer.incomplete_details.reason == "content_filter"
    assert client.responses.retrieve(answer.id).status == "incomplete"


@pytest.mark.parametrize("streamed", [False, True])
def test_an_upstreams_reasoning_state_goes_back_to_it_and_nowhere_else(
    gatehouse: RunningServer, fresh: FakeUpstream, streamed: bool
) -> None:
    client = team_sdk(gatehouse, "red")
    fresh.then(Behaviour(thinking=True))
    if streamed:
        with client.responses.stream(model="native", input="think first") as stream:
            first = stream.get_final_response()
    else:
        first = client.responses.create(model="native", input="think first")
    reasoning = [item for item in first.output if item.type == "reasoning"]
    assert [item.encrypted_content for item in reasoning] == ["enc-responses-1"]

    client.responses.create(model="native", input="and then", previous_response_id=first.id)
    given = sent(fresh)["input"]
    assert [i["type"] for i in given] == ["message", "reasoning", "message", "message"]
    assert given[1]["encrypted_content"] == "enc-responses-1"

    # A chat-only deployment cannot take it: refused by name, never dropped.
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="chat-only", input="and", previous_response_id=first.id)
    assert refused.value.body["param"] == "input[1].encrypted_content"  # type: ignore[index]
    assert fresh.count("/chat/completions") == 0
