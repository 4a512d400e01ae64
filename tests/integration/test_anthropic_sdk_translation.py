"""The official anthropic SDK through ``/v1/messages`` to upstreams that speak other APIs.

A real gatehouse server in front of the fake upstream, once as an OpenAI-chat
upstream (model group ``up``) and once as Gemini (``gem``). Each test runs a
tool-use turn with thinking, sends the SDK's own answer back with the tool's
result (as an agent loop does), and checks what reached the upstream on the
second turn: the same signature, the call answered by its id (or, for Gemini,
named after its function), the thinking budget mapped to the upstream's setting.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import MASTER, create_key, write_config

SHOUT: Any = {
    "name": "shout",
    "description": "Shout the text back",
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}
THINKING: Any = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture(scope="module")
def gatehouse(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("anthropic-sdk")
    gemini = f"""  - name: gem
    deployments:
      - provider: gemini
        model: gemini-2.5-flash
        base_url: '{upstream.base_url}'
        api_key: fake-key
"""
    config = write_config(root / "gatehouse.yaml", upstream, gemini)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


@pytest.fixture
def fresh(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


@pytest.fixture
def client(gatehouse: RunningServer) -> anthropic.Anthropic:
    key = create_key(gatehouse, team="agents")
    return anthropic.Anthropic(api_key=key, base_url=gatehouse.base_url, max_retries=0)


def _first_turn(client: anthropic.Anthropic, model: str, *, stream: bool) -> Any:
    request: Any = {
        "model": model,
        "max_tokens": 4096,
        "thinking": THINKING,
        "tools": [SHOUT],
        "messages": [{"role": "user", "content": "Please shout quiet words"}],
    }
    if stream:
        with client.messages.stream(**request) as events:
            return events.get_final_message()
    return client.messages.create(**request)


def _second_turn(client: anthropic.Anthropic, model: str, first: Any) -> Any:
    tool_use = next(block for block in first.content if block.type == "tool_use")
    return client.messages.create(
        model=model,
        max_tokens=4096,
        thinking=THINKING,
        tools=[SHOUT],
        messages=[
            {"role": "user", "content": "Please shout quiet words"},
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tool_use.id, "content": "QUIET WORDS"}
                ],
            },
        ],
    )


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_tool_use_and_thinking_round_trip_over_an_openai_chat_upstream(
    client: anthropic.Anthropic, fresh: FakeUpstream, stream: bool
) -> None:
    fresh.then(Behaviour("tool_call", thinking=True))
    first = _first_turn(client, "up", stream=stream)
    thinking, tool_use = first.content
    assert thinking.type == "thinking"
    assert thinking.signature == fresh.signature("openai", 1)
    assert thinking.thinking == "Thinking it over (1)."
    assert tool_use.type == "tool_use"
    assert tool_use.name == "shout"
    assert tool_use.input == {"text": "Please shout quiet words"}
    assert first.stop_reason == "tool_use"
    sent = fresh.requests[0].body
    assert sent["reasoning_effort"] == "low"  # a 2048-token budget, by the table
    assert "thinking" not in sent

    second = _second_turn(client, "up", first)
    assert second.content[-1].type == "text"
    assert second.stop_reason == "end_turn"
    assistant, result = fresh.requests[1].body["messages"][-2:]
    assert assistant["thinking_blocks"] == [
        {"type": "thinking", "thinking": thinking.thinking, "signature": thinking.signature}
    ]
    assert assistant["reasoning_content"] == thinking.thinking
    assert assistant["tool_calls"][0]["id"] == tool_use.id
    assert result == {"role": "tool", "tool_call_id": tool_use.id, "content": "QUIET WORDS"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
def test_tool_use_and_thought_signatures_round_trip_over_a_gemini_upstream(
    client: anthropic.Anthropic, fresh: FakeUpstream, stream: bool
) -> None:
    fresh.then(Behaviour("tool_call", thinking=True), Behaviour(thinking=True))
    first = _first_turn(client, "gem", stream=stream)
    thinking, tool_use = first.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Thinking it over (1)."
    assert tool_use.type == "tool_use"
    assert tool_use.name == "shout"
    assert first.stop_reason == "tool_use"
    config = fresh.requests[0].body["generationConfig"]["thinkingConfig"]
    assert config == {"thinkingBudget": 2048, "includeThoughts": True}

    second = _second_turn(client, "gem", first)
    model_turn, results = fresh.requests[1].body["contents"][1:3]
    assert model_turn["parts"] == [
        {
            "functionCall": {"name": "shout", "args": {"text": "Please shout quiet words"}},
            "thoughtSignature": fresh.signature("gemini", 1),
        }
    ]
    assert results["parts"] == [
        {"functionResponse": {"name": "shout", "response": {"content": "QUIET WORDS"}}}
    ]
    # The text answer's own signature comes back to the client, and would go on.
    signed = [block for block in second.content if block.type == "thinking" and block.signature]
    assert [block.signature for block in signed] == [f"gemini:{fresh.signature('gemini', 2)}"]


def test_an_image_url_gemini_cannot_fetch_is_a_400_naming_it(
    client: anthropic.Anthropic, fresh: FakeUpstream
) -> None:
    image: Any = {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.png"}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(
            model="gem",
            max_tokens=100,
            messages=[{"role": "user", "content": [{"type": "text", "text": "What?"}, image]}],
        )
    assert "messages[0].content[1].image_url.url" in str(caught.value.body)
    assert fresh.requests == []
