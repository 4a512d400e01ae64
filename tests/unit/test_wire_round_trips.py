"""Reasoning state and tool calls survive a whole turn through gatehouse and back.

Each test takes an upstream's answer, hands it to a client in the client's
dialect (as JSON or as a stream the client accumulates), lets the client send
its next turn the way that client does, and checks that what reaches the
upstream carries the same signatures and names as the upstream sent.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import InvalidRequestError
from gatehouse.core.reasoning import EFFORT_BUDGETS, effort_for_budget
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.faces import anthropic as face
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.anthropic import AnthropicProvider
from gatehouse.providers.anthropic import translate as anthropic
from gatehouse.providers.base import ModelInfo
from gatehouse.providers.gemini import translate as gemini
from gatehouse.providers.gemini.calls import split_call_id
from gatehouse.providers.openai_compat import translate as openai_compat

SIGNATURE = "EqQBCkYIBxgCKkDl3T0yWn1vXb8mR5oQ2cM4kT9sQ1fZ0hG7jP6uA2xY8rN3bV5wC1eD4gH7i=="
REDACTED = "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT2Xlxh0L5L8rLVyIwxtE3rAFBa8cr3qpPkNRj2Y=="
GEMINI_CALL_SIGNATURE = "CiQB0e2Kb3KcYd9XnQFz1m8s7pWqLr2uVtY6hJ4gF5dS3aZ0xCvBnMlKjHg+/=="
GEMINI_TEXT_SIGNATURE = "CiUB0e2Kb9TextSigQwErTyUiOpAsDfGhJkLzXcVbNm0987654321ZyXw=="
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]

CLAUDE_ANSWER = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Two cities.", "signature": SIGNATURE},
        {"type": "redacted_thinking", "data": REDACTED},
        {"type": "tool_use", "id": "toolu_P", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_O", "name": "get_weather", "input": {"city": "Oslo"}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 10, "output_tokens": 5},
}

CLAUDE_STREAM: list[dict[str, Any]] = [
    {"type": "message_start", "message": {"id": "msg_02", "model": "claude", "usage": {}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "Two "},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "thinking_delta", "thinking": "cities."},
    },
    {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "signature_delta", "signature": SIGNATURE},
    },
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_P", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"city": "Paris"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
    {"type": "message_stop"},
]

GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Looking both up.", "thought": True},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                        "thoughtSignature": GEMINI_CALL_SIGNATURE,
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                ],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 5},
    "responseId": "resp-g-1",
}


def _tool_results(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": c["id"], "content": "fine"} for c in calls]


def _openai_client_turn(assistant: dict[str, Any]) -> ChatCompletionRequest:
    """An OpenAI-chat client's next request: the answer's message as it came, then results."""
    return ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "tools": TOOLS,
            "messages": [
                {"role": "user", "content": "Weather in Paris and Oslo?"},
                assistant,
                *_tool_results(assistant["tool_calls"]),
            ],
        }
    )


def _accumulate(chunks: list[ChatCompletionChunk]) -> dict[str, Any]:
    """What an OpenAI-chat client keeps of a streamed answer: text, reasoning, whole
    signed blocks, and tool calls joined by index (as the openai SDK's helpers do)."""
    message: dict[str, Any] = {"role": "assistant", "content": "", "reasoning_content": ""}
    calls: dict[int, dict[str, Any]] = {}
    blocks: list[dict[str, Any]] = []
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            message["content"] += delta.content or ""
            message["reasoning_content"] += delta.reasoning_content or ""
            blocks.extend(delta.thinking_blocks or [])
            for call in delta.tool_calls or []:
                entry = calls.setdefault(
                    call["index"], {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                entry["id"] = call.get("id") or entry.get("id")
                function = call.get("function") or {}
                entry["function"]["name"] += function.get("name") or ""
                entry["function"]["arguments"] += function.get("arguments") or ""
    message["tool_calls"] = [calls[i] for i in sorted(calls)]
    message["thinking_blocks"] = blocks
    return message


def _anthropic_client_turn(message: dict[str, Any]) -> ChatCompletionRequest:
    """An anthropic SDK client's next /v1/messages request: the whole answer's content
    as the assistant turn, then a tool_result per tool_use."""
    results = [
        {"type": "tool_result", "tool_use_id": block["id"], "content": "fine"}
        for block in message["content"]
        if block["type"] == "tool_use"
    ]
    body = {
        "model": "m",
        "max_tokens": 2000,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {"role": "assistant", "content": message["content"]},
            {"role": "user", "content": results},
        ],
    }
    return face.to_openai(face.MessagesRequest.model_validate(body))


def _messages_from_events(frames: list[bytes]) -> dict[str, Any]:
    """A Messages API stream accumulated into the message, as the anthropic SDK does."""
    content: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for frame in frames:
        data = orjson.loads(frame.split(b"data: ", 1)[1])
        if data["type"] == "content_block_start":
            content.append(dict(data["content_block"]))
        elif data["type"] == "content_block_delta":
            block, delta = content[data["index"]], data["delta"]
            if delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] += delta["signature"]
            elif delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "input_json_delta":
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
    for index, text in partial.items():
        content[index]["input"] = orjson.loads(text)
    return {"content": content}


# -- Anthropic upstream -------------------------------------------------------------


def test_claude_thinking_round_trips_through_an_openai_chat_client() -> None:
    completion = anthropic.response_from_wire(CLAUDE_ANSWER, created=0)
    assistant = completion.choices[0].message.model_dump(exclude_none=True)
    body = anthropic.request_to_wire(_openai_client_turn(assistant), "claude")
    turn = body["messages"][1]
    assert turn["content"][:2] == CLAUDE_ANSWER["content"][:2]  # thinking first, unchanged
    assert [b["id"] for b in turn["content"][2:]] == ["toolu_P", "toolu_O"]
    results = body["messages"][2]["content"]
    assert [r["tool_use_id"] for r in results] == ["toolu_P", "toolu_O"]


def test_claude_streamed_thinking_round_trips_through_an_openai_chat_client() -> None:
    translator = anthropic.StreamTranslator(created=0)
    chunks = [chunk for event in CLAUDE_STREAM for chunk in translator.feed(event)]
    assistant = _accumulate(chunks)
    assert assistant["reasoning_content"] == "Two cities."
    body = anthropic.request_to_wire(_openai_client_turn(assistant), "claude")
    assert body["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "Two cities.",
        "signature": SIGNATURE,
    }


def test_claude_thinking_round_trips_through_the_messages_face() -> None:
    completion = anthropic.response_from_wire(CLAUDE_ANSWER, created=0)
    message = face.from_openai(completion, "m")
    body = anthropic.request_to_wire(_anthropic_client_turn(message), "claude")
    assert body["messages"][1]["content"] == CLAUDE_ANSWER["content"]


# -- Gemini upstream ----------------------------------------------------------------


def test_gemini_calls_get_unique_ids_that_carry_the_signature() -> None:
    completion = gemini.response_from_wire(GEMINI_ANSWER, "gemini-2.5-flash", created=0)
    calls = completion.choices[0].message.tool_calls or []
    ids = [call["id"] for call in calls]
    assert len(set(ids)) == 2
    assert split_call_id(ids[0]) == (None, GEMINI_CALL_SIGNATURE)
    assert split_call_id(ids[1]) == (None, None)
    again = gemini.response_from_wire(GEMINI_ANSWER, "gemini-2.5-flash", created=5)
    assert [c["id"] for c in again.choices[0].message.tool_calls or []] == ids  # stable
    streamed = gemini.StreamTranslator("gemini", created=0).feed(GEMINI_ANSWER)
    deltas = [c for chunk in streamed for c in chunk.choices[0].delta.tool_calls or []]
    assert [d["id"] for d in deltas] == ids  # the same whether streamed or not


def test_gemini_signature_round_trips_through_an_openai_chat_client() -> None:
    completion = gemini.response_from_wire(GEMINI_ANSWER, "gemini-3-pro-preview", created=0)
    assistant = completion.choices[0].message.model_dump(exclude_none=True)
    body = gemini.request_to_wire(_openai_client_turn(assistant), "gemini-3-pro-preview")
    model_turn, results = body["contents"][1], body["contents"][2]
    assert model_turn["parts"] == GEMINI_ANSWER["candidates"][0]["content"]["parts"][1:]
    assert [p["functionResponse"]["name"] for p in results["parts"]] == ["get_weather"] * 2


def test_gemini_signatures_round_trip_through_the_messages_face_streamed() -> None:
    events = [
        {
            "candidates": [{"content": {"parts": [{"text": "Hmm.", "thought": True}]}}],
            "responseId": "r",
        },
        {
            "candidates": [
                {
                    "content": {
                        "parts": [{"text": "Sure.", "thoughtSignature": GEMINI_TEXT_SIGNATURE}]
                    }
                }
            ],
            "responseId": "r",
        },
        {
            "candidates": [
                {
                    "content": {"parts": GEMINI_ANSWER["candidates"][0]["content"]["parts"][1:]},
                    "finishReason": "STOP",
                }
            ],
            "responseId": "r",
        },
    ]
    upstream = gemini.StreamTranslator("gemini", created=0)
    chunks = [chunk for event in events for chunk in upstream.feed(event)]
    chunks += upstream.close()
    messages = face.StreamTranslator("m")
    frames = [frame for chunk in chunks for frame in messages.feed(chunk)] + messages.close()
    message = _messages_from_events(frames)
    kinds = [block["type"] for block in message["content"]]
    assert kinds == ["thinking", "text", "thinking", "tool_use", "tool_use"]
    body = gemini.request_to_wire(_anthropic_client_turn(message), "gemini-3-pro-preview")
    parts = body["contents"][1]["parts"]
    assert parts[0] == {"text": "Sure.", "thoughtSignature": GEMINI_TEXT_SIGNATURE}
    assert parts[1]["thoughtSignature"] == GEMINI_CALL_SIGNATURE
    assert "thoughtSignature" not in parts[2]  # only the first parallel call is signed
    # The thought summary went to the client, and a Gemini signature never reaches Claude.
    assert message["content"][0]["thinking"] == "Hmm."
    claude = anthropic.request_to_wire(_anthropic_client_turn(message), "claude")
    assert [b["type"] for b in claude["messages"][1]["content"]] == ["text", "tool_use", "tool_use"]


# -- reasoning effort ---------------------------------------------------------------


@pytest.mark.parametrize("effort", ["minimal", "low", "medium", "high", "xhigh"])
def test_reasoning_effort_maps_to_each_providers_setting(effort: str) -> None:
    request = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort}
    )
    claude = anthropic.request_to_wire(request, "claude")
    assert claude["thinking"] == {"type": "enabled", "budget_tokens": EFFORT_BUDGETS[effort]}
    assert claude["max_tokens"] > EFFORT_BUDGETS[effort]
    flash = gemini.request_to_wire(request, "gemini-2.5-flash")["generationConfig"]
    assert flash["thinkingConfig"]["thinkingBudget"] == EFFORT_BUDGETS[effort]
    pro3 = gemini.request_to_wire(request, "gemini-3-pro-preview")["generationConfig"]
    assert pro3["thinkingConfig"]["thinkingLevel"] == gemini.THINKING_LEVELS[effort]


def test_a_thinking_budget_maps_back_to_an_effort() -> None:
    assert [effort_for_budget(b) for b in (0, 1024, 2048, 8192, 24576, 64000)] == [
        "none",
        "minimal",
        "low",
        "medium",
        "high",
        "high",
    ]
    request = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "thinking": {"type": "enabled", "budget_tokens": 9000},
        }
    )
    body = openai_compat.chat_to_wire(request, "o4-mini")
    assert body["reasoning_effort"] == "medium"
    assert "thinking" not in body


def test_an_effort_budget_shrinks_below_max_tokens_but_an_exact_one_is_refused() -> None:
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4000}
    shrunk = ChatCompletionRequest.model_validate({**base, "reasoning_effort": "high"})
    assert anthropic.request_to_wire(shrunk, "c")["thinking"]["budget_tokens"] == 3999
    exact = ChatCompletionRequest.model_validate(
        {**base, "thinking": {"type": "enabled", "budget_tokens": 5000}}
    )
    with pytest.raises(InvalidRequestError) as caught:
        anthropic.request_to_wire(exact, "c")
    assert caught.value.param == "max_tokens"


# -- what cannot be translated is a 400 naming it -----------------------------------


def _chat(**fields: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}
    )


@pytest.mark.parametrize(
    ("call", "param"),
    [
        (
            lambda: gemini.request_to_wire(
                _chat(
                    messages=[
                        {
                            "role": "user",
                            "content": [
                                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
                            ],
                        }
                    ]
                )
            ),
            "messages[0].content[0].image_url.url",
        ),
        (
            lambda: gemini.request_to_wire(_chat(tools=TOOLS, parallel_tool_calls=False)),
            "parallel_tool_calls",
        ),
        (
            lambda: gemini.request_to_wire(
                _chat(tools=TOOLS, tool_choice={"type": "allowed_tools", "allowed_tools": {}})
            ),
            "tool_choice",
        ),
        (
            lambda: gemini.request_to_wire(_chat(reasoning_effort="none"), "gemini-3-flash"),
            "reasoning_effort",
        ),
        (
            lambda: anthropic.request_to_wire(
                _chat(tools=TOOLS, tool_choice={"type": "custom", "custom": {"name": "x"}}), "c"
            ),
            "tool_choice",
        ),
        (
            lambda: anthropic.request_to_wire(_chat(tools=[{"type": "custom", "name": "x"}]), "c"),
            "tools[0].type",
        ),
        (
            lambda: anthropic.request_to_wire(_chat(reasoning_effort="extreme"), "c"),
            "reasoning_effort",
        ),
    ],
)
def test_untranslatable_requests_are_refused_by_name(call: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        call()
    assert caught.value.http_status == 400
    assert caught.value.param == param


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"mcp_servers": [{"type": "url", "url": "https://mcp.test"}]}, "mcp_servers"),
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "bogus"}}, "tool_choice.type"),
        ({"stop_sequences": ["a", "b", "c", "d", "e"]}, "stop_sequences"),
        ({"thinking": {"type": "enabled"}}, "thinking"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format"),
        ({"output_config": {"effort": "huge"}}, "output_config.effort"),
        (
            {"context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]}},
            "context_management.edits[0]",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "document", "source": {"type": "text", "data": "x"}}],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        "role": "assistant",
                        "content": [{"type": "server_tool_use", "id": "s", "name": "web_search"}],
                    },
                ]
            },
            "messages[1].content[0].type",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}],
                    }
                ]
            },
            "messages[0].content[0].source.type",
        ),
    ],
)
def test_the_messages_face_refuses_what_it_cannot_translate_by_name(
    change: dict[str, Any], param: str
) -> None:
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(InvalidRequestError) as caught:
        face.to_openai(face.MessagesRequest.model_validate({**body, **change}))
    assert caught.value.param == param


def test_the_messages_face_makes_repeated_or_missing_tool_ids_unique() -> None:
    calls = [
        {"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "", "type": "function", "function": {"name": "f", "arguments": "{}"}},
    ]
    completion = ChatCompletion.model_validate(
        {
            "id": "x",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "message": {"role": "assistant", "content": None, "tool_calls": calls},
                    "finish_reason": "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 1, "total_tokens": 1},
        }
    )
    ids = [b["id"] for b in face.from_openai(completion, "m")["content"]]
    assert ids[0] == "call_0"
    assert len(set(ids)) == 3
    assert all(ids)
    translator = face.StreamTranslator("m")
    frames = []
    for index, call in enumerate(calls):
        chunk = {
            "id": "x",
            "created": 0,
            "model": "m",
            "choices": [{"delta": {"tool_calls": [{"index": index, **call}]}}],
        }
        frames += translator.feed(ChatCompletionChunk.model_validate(chunk))
    streamed = [b["id"] for b in _messages_from_events(frames)["content"]]
    assert streamed[0] == "call_0"
    assert len(set(streamed)) == 3
    assert all(streamed)


def test_what_claude_code_sends_beyond_the_messages_basics_translates() -> None:
    body = face.MessagesRequest.model_validate(
        {
            "model": "m",
            "max_tokens": 32000,
            "thinking": {"type": "adaptive"},
            "output_config": {"effort": "max"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": "Agents you may call: ..."},
            ],
        }
    )
    chat = face.to_openai(body)
    assert chat.reasoning_effort == "xhigh"
    assert [m.role for m in chat.messages] == ["user", "system"]
    claude = anthropic.request_to_wire(chat, "claude")
    assert claude["thinking"] == {"type": "adaptive"}
    assert claude["output_config"] == {"effort": "max"}
    assert claude["system"] == "Agents you may call: ..."
    assert "context_management" not in claude
    assert openai_compat.chat_to_wire(chat, "o")["reasoning_effort"] == "xhigh"
    config = gemini.request_to_wire(chat, "gemini-3-pro-preview")["generationConfig"]
    assert config["thinkingConfig"]["thinkingLevel"] == "high"


async def test_a_count_with_a_thinking_budget_needs_no_max_tokens() -> None:
    seen: list[UpstreamRequest] = []

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        seen.append(request)
        return UpstreamResponse(200, {}, b'{"input_tokens": 9}')

    config = DeploymentConfig(provider="anthropic", model="claude-x", base_url="http://up")
    info = ModelInfo(id="claude", kind="chat", owned_by="x", context_window=0)
    provider = AnthropicProvider(config, info=info, api_key="k", transport=MockTransport(handler))
    body = face.MessagesRequest.model_validate(
        {
            "model": "claude",
            "max_tokens": 1,  # what a count_tokens body gets when it names none
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [{"role": "user", "content": "hi"}],
        }
    )
    assert await provider.count_tokens(face.to_openai(body)) == 9
    sent = orjson.loads(seen[0].body)
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "max_tokens" not in sent
