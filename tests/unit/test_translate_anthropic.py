"""Anthropic Messages API translation, against recorded wire examples, both directions."""

from __future__ import annotations

import orjson
import pytest

from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Usage
from gatehouse.faces import anthropic as inbound
from gatehouse.providers.anthropic import translate

OPENAI_REQUEST = {
    "model": "claude",
    "messages": [
        {"role": "system", "content": "Be terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "cat"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"},
        {"role": "user", "content": "Thanks."},
    ],
    "max_tokens": 100,
    "temperature": 1.5,
    "stop": ["END"],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look a thing up",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": "required",
    "user": "u-1",
}


def test_openai_request_to_messages_api() -> None:
    body = translate.request_to_wire(
        ChatCompletionRequest.model_validate(OPENAI_REQUEST), "claude-3-5-haiku"
    )
    assert body["model"] == "claude-3-5-haiku"
    assert body["system"] == "Be terse."
    assert body["max_tokens"] == 100
    assert body["temperature"] == 1.0  # clipped to Anthropic's range
    assert body["stop_sequences"] == ["END"]
    assert body["tool_choice"] == {"type": "any"}
    assert body["tools"] == [
        {
            "name": "lookup",
            "description": "Look a thing up",
            "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
        }
    ]
    assert body["metadata"] == {"user_id": "u-1"}
    user, assistant, tool_turn = body["messages"]
    assert user["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert user["content"][2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}
    assert assistant == {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}}],
    }
    # The tool result and the next user turn merge into one user message.
    assert tool_turn["role"] == "user"
    assert tool_turn["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
        {"type": "text", "text": "Thanks."},
    ]


def test_default_max_tokens_is_set() -> None:
    req = ChatCompletionRequest.model_validate(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert translate.request_to_wire(req, "x")["max_tokens"] == translate.DEFAULT_MAX_TOKENS


MESSAGE_RESPONSE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-5-haiku",
    "content": [
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "dog"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_read_input_tokens": 100,
        "cache_creation_input_tokens": 20,
    },
}


def test_messages_response_to_openai() -> None:
    completion = translate.response_from_wire(MESSAGE_RESPONSE, created=1)
    choice = completion.choices[0]
    assert choice.message.content == "Let me look."
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls == [
        {
            "id": "toolu_2",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"q":"dog"}'},
        }
    ]
    assert completion.usage.prompt_tokens == 130
    assert completion.usage.completion_tokens == 5
    assert completion.usage.model_dump()["prompt_tokens_details"] == {
        "cached_tokens": 100,
        "cache_write_tokens": 20,
    }


STREAM = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_9",
            "model": "claude",
            "usage": {"input_tokens": 12, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "lo"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_3", "name": "lookup", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '"x"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
    {"type": "message_stop"},
]


def test_stream_events_translate_chunk_by_chunk() -> None:
    translator = translate.StreamTranslator(created=1)
    chunks = [c for event in STREAM for c in translator.feed(event)]
    assert translator.finished
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello"
    calls = [
        c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls
    ]
    assert calls[0] == [
        {
            "index": 0,
            "id": "toolu_3",
            "type": "function",
            "function": {"name": "lookup", "arguments": ""},
        }
    ]
    assert "".join(c[0]["function"]["arguments"] for c in calls[1:]) == '{"q": "x"}'
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 9)


def test_inbound_messages_request_to_openai() -> None:
    body = inbound.MessagesRequest.model_validate(
        {
            "model": "any",
            "max_tokens": 50,
            "system": [{"type": "text", "text": "Sys."}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Look:"},
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAA"},
                        },
                    ],
                },
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "done"}],
                },
            ],
            "stop_sequences": ["X"],
            "tool_choice": {"type": "tool", "name": "f"},
            "tools": [{"name": "f", "input_schema": {"type": "object"}}],
            "stream": True,
        }
    )
    request = inbound.to_openai(body)
    dumped = request.model_dump(exclude_none=True)
    assert dumped["messages"][0] == {"role": "system", "content": "Sys."}
    assert dumped["messages"][1]["content"][1]["image_url"]["url"] == "data:image/jpeg;base64,AAA"
    assert dumped["messages"][2]["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": '{"a":1}',
    }
    assert dumped["messages"][3] == {"role": "tool", "content": "done", "tool_call_id": "t1"}
    assert request.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert request.stop == ["X"]
    assert request.include_usage()


def test_openai_completion_to_inbound_message() -> None:
    completion = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "length",
                    "message": {"role": "assistant", "content": "Hi"},
                }
            ],
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 2,
                "total_tokens": 12,
                "prompt_tokens_details": {"cached_tokens": 4},
            },
        }
    )
    message = inbound.from_openai(completion, "gpt")
    assert message["content"] == [{"type": "text", "text": "Hi"}]
    assert message["stop_reason"] == "max_tokens"
    assert message["usage"]["input_tokens"] == 6
    assert message["usage"]["cache_read_input_tokens"] == 4


def test_openai_chunks_to_inbound_events() -> None:
    def chunk(**delta: object) -> ChatCompletionChunk:
        finish = delta.pop("finish", None)
        return ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    translator = inbound.StreamTranslator("gpt")
    events: list[bytes] = []
    for c in [
        chunk(role="assistant", content=""),
        chunk(content="Hel"),
        chunk(content="lo"),
        chunk(
            tool_calls=[
                {
                    "index": 0,
                    "id": "t",
                    "type": "function",
                    "function": {"name": "f", "arguments": "{}"},
                }
            ]
        ),
        chunk(finish="tool_calls"),
    ]:
        events.extend(translator.feed(c))
    usage_chunk = ChatCompletionChunk(
        id="c",
        created=0,
        model="m",
        choices=[],
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
    )
    events.extend(translator.feed(usage_chunk))
    events.extend(translator.close())
    names = [e.split(b"\n")[0].removeprefix(b"event: ").decode() for e in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    delta = orjson.loads(events[-2].split(b"data: ", 1)[1])
    assert delta["delta"]["stop_reason"] == "tool_use"
    assert delta["usage"]["output_tokens"] == 2


def test_the_stop_sequence_that_ended_an_answer_reaches_the_messages_api_caller() -> None:
    # An Anthropic upstream names it; the OpenAI shape has no field for it, so it
    # rides along as vLLM's stop_reason, which the Messages face reads back.
    upstream = {**MESSAGE_RESPONSE, "content": [{"type": "text", "text": "1, 2, 3, "}]}
    upstream |= {"stop_reason": "stop_sequence", "stop_sequence": "4"}
    completion = translate.response_from_wire(upstream, created=1)
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].model_dump()["stop_reason"] == "4"
    message = inbound.from_openai(completion, "claude")
    assert (message["stop_reason"], message["stop_sequence"]) == ("stop_sequence", "4")
    # An answer that ended otherwise keeps OpenAI's shape, and end_turn.
    plain = translate.response_from_wire({**upstream, "stop_reason": "end_turn"}, created=1)
    assert "stop_reason" not in plain.choices[0].model_dump()
    message = inbound.from_openai(plain, "claude")
    assert (message["stop_reason"], message["stop_sequence"]) == ("end_turn", None)

    # Streamed: the upstream's message_delta, then the face's.
    upstream_stream = [
        *STREAM[:6],
        {
            "type": "message_delta",
            "delta": {"stop_reason": "stop_sequence", "stop_sequence": "4"},
            "usage": {"output_tokens": 3},
        },
        {"type": "message_stop"},
    ]
    translator = translate.StreamTranslator(created=1)
    chunks = [c for event in upstream_stream for c in translator.feed(event)]
    face = inbound.StreamTranslator("claude")
    events = [e for c in chunks for e in face.feed(c)] + face.close()
    delta = orjson.loads(events[-2].split(b"data: ", 1)[1])
    assert delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "4"}


LOGPROBS = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}


def test_logprobs_are_left_out_of_anthropic_calls_and_answers() -> None:
    asked = ChatCompletionRequest.model_validate(
        {**OPENAI_REQUEST, "logprobs": True, "top_logprobs": 2}
    )
    plain = ChatCompletionRequest.model_validate(OPENAI_REQUEST)
    assert translate.request_to_wire(asked, "c") == translate.request_to_wire(plain, "c")
    # An OpenAI-compatible upstream's logprobs reach an Anthropic-dialect client as
    # a plain message: the Messages API has no place for them.
    completion = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hi"},
                    "logprobs": LOGPROBS,
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
    )
    assert inbound.from_openai(completion, "gpt")["content"] == [{"type": "text", "text": "Hi"}]
    chunk = ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"content": "Hi"}, "logprobs": LOGPROBS}],
        }
    )
    events = inbound.StreamTranslator("gpt").feed(chunk)
    assert b'"text":"Hi"' in events[-1]


def test_messages_that_translate_to_no_message_are_the_clients_400() -> None:
    # Found by the API fuzzer (tests/integration/test_api_fuzz.py): content [] left
    # no chat message, and the chat request's own validation failed as a 500.
    body = inbound.MessagesRequest.model_validate(
        {"model": "any", "max_tokens": 5, "messages": [{"role": "user", "content": []}]}
    )
    with pytest.raises(ValidationFailedError) as raised:
        inbound.to_openai(body)
    assert raised.value.http_status == 400
    assert raised.value.param == "messages"
