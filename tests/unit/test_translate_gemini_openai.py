"""Gemini and OpenAI-compatible translation against recorded wire examples."""

from __future__ import annotations

import orjson
import pytest

from gatehouse.core.errors import ContentPolicyError, UpstreamError
from gatehouse.core.types import ChatCompletionRequest, EmbeddingRequest
from gatehouse.providers.gemini import translate as gemini
from gatehouse.providers.openai_compat import translate as openai_wire


def test_openai_request_keeps_what_the_client_set_and_retargets_the_model() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "model": "public-name",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "logit_bias": {"50256": -100},
            "cache": {"ttl": 5},
        }
    )
    body = openai_wire.chat_to_wire(request, "gpt-4o-2024")
    assert body == {
        "model": "gpt-4o-2024",
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "logit_bias": {"50256": -100},
    }
    streamed = openai_wire.chat_to_wire(request.model_copy(update={"stream": True}), "m")
    assert streamed["stream_options"] == {"include_usage": True}


def test_openai_chunks_parse_and_in_band_errors_raise() -> None:
    chunk = openai_wire.chunk_from_wire(
        b'{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
        b'"choices":[{"index":0,"delta":{"content":"x","refusal":null},"finish_reason":null}]}'
    )
    assert chunk.choices[0].delta.content == "x"
    with pytest.raises(UpstreamError, match="overloaded"):
        openai_wire.chunk_from_wire(b'{"error": {"message": "overloaded"}}')


TOKEN = {
    "token": "Hi",
    "logprob": -0.01,
    "bytes": [72, 105],
    "top_logprobs": [
        {"token": "Hi", "logprob": -0.01, "bytes": [72, 105]},
        {"token": "Hello", "logprob": -4.6, "bytes": [72, 101, 108, 108, 111]},
    ],
}


def test_openai_logprobs_are_asked_for_and_come_back_unchanged() -> None:
    request = ChatCompletionRequest.model_validate(
        {
            "model": "pub",
            "messages": [{"role": "user", "content": "hi"}],
            "logprobs": True,
            "top_logprobs": 2,
        }
    )
    body = openai_wire.chat_to_wire(request, "gpt-4o")
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2)
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi"},
                "finish_reason": "stop",
                "logprobs": {"content": [TOKEN], "refusal": None},
            }
        ],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
        "system_fingerprint": None,
    }
    completion = openai_wire.chat_from_wire(answer)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert logprobs.content[0].top_logprobs[1].token == "Hello"
    # What the server writes is what the upstream sent.
    assert orjson.loads(completion.__pydantic_serializer__.to_json(completion)) == answer


def test_openai_streamed_logprobs_come_back_in_each_chunk() -> None:
    chunk = openai_wire.chunk_from_wire(
        orjson.dumps(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"content": "Hi"},
                        "finish_reason": None,
                        "logprobs": {"content": [TOKEN], "refusal": None},
                    }
                ],
            }
        )
    )
    logprobs = chunk.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert logprobs.content[0].bytes == [72, 105]
    sent = orjson.loads(chunk.__pydantic_serializer__.to_json(chunk))
    assert sent["choices"][0]["logprobs"] == {"content": [TOKEN], "refusal": None}


def test_logprobs_fields_openai_may_add_or_leave_out_pass_through() -> None:
    completion = openai_wire.chat_from_wire(
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [
                {
                    "message": {"role": "assistant", "content": "x"},
                    "finish_reason": "stop",
                    "logprobs": {
                        "content": [{"token": "x", "logprob": -1.5, "token_id": 87}],
                        "future_field": 1,
                    },
                }
            ],
            "usage": {"prompt_tokens": 1, "total_tokens": 2},
        }
    )
    sent = orjson.loads(completion.__pydantic_serializer__.to_json(completion))
    assert sent["choices"][0]["logprobs"] == {
        "content": [
            {"token": "x", "logprob": -1.5, "bytes": None, "top_logprobs": [], "token_id": 87}
        ],
        "refusal": None,
        "future_field": 1,
    }


def test_choices_without_logprobs_still_say_null() -> None:
    completion = openai_wire.chat_from_wire(
        {
            "id": "c",
            "created": 1,
            "model": "m",
            "choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "total_tokens": 2},
        }
    )
    sent = orjson.loads(completion.__pydantic_serializer__.to_json(completion))
    assert sent["choices"][0]["logprobs"] is None


def test_logprobs_requests_translate_for_gemini_without_them() -> None:
    request = ChatCompletionRequest.model_validate(
        {**GEMINI_REQUEST, "logprobs": True, "top_logprobs": 3}
    )
    plain = ChatCompletionRequest.model_validate(GEMINI_REQUEST)
    assert gemini.request_to_wire(request) == gemini.request_to_wire(plain)


def test_openai_embeddings_round_trip() -> None:
    body = openai_wire.embeddings_to_wire(
        EmbeddingRequest(model="pub", input=["a"], encoding_format="base64"), "text-emb-3"
    )
    assert body == {"model": "text-emb-3", "input": ["a"], "encoding_format": "base64"}


GEMINI_REQUEST = {
    "model": "gem",
    "messages": [
        {"role": "system", "content": "Sys."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
    ],
    "temperature": 0.3,
    "max_tokens": 64,
    "stop": "END",
    "seed": 9,
    "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    "tools": [
        {
            "type": "function",
            "function": {"name": "f", "description": "d", "parameters": {"type": "object"}},
        }
    ],
    "tool_choice": "required",
}


def test_openai_request_to_generate_content() -> None:
    body = gemini.request_to_wire(ChatCompletionRequest.model_validate(GEMINI_REQUEST))
    assert body["systemInstruction"] == {"parts": [{"text": "Sys."}]}
    user, model, tool = body["contents"]
    assert user == {
        "role": "user",
        "parts": [{"text": "Describe"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}],
    }
    assert model == {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"a": 1}}}]}
    assert tool == {
        "role": "user",
        "parts": [{"functionResponse": {"name": "f", "response": {"content": "42"}}}],
    }
    assert body["generationConfig"] == {
        "temperature": 0.3,
        "maxOutputTokens": 64,
        "stopSequences": ["END"],
        "seed": 9,
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "f", "description": "d", "parametersJsonSchema": {"type": "object"}}
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_generate_content_response_to_openai() -> None:
    completion = gemini.response_from_wire(
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"text": "Calling."},
                            {"functionCall": {"name": "f", "args": {"x": 2}}},
                        ],
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 8,
                "candidatesTokenCount": 3,
                "totalTokenCount": 11,
                "cachedContentTokenCount": 2,
            },
            "modelVersion": "gemini-2.0-flash",
            "responseId": "resp-1",
        },
        "gem",
        created=5,
    )
    choice = completion.choices[0]
    assert choice.message.content == "Calling."
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    assert choice.message.tool_calls[0]["function"] == {"name": "f", "arguments": '{"x":2}'}
    assert completion.usage.total_tokens == 11
    assert completion.model == "gemini-2.0-flash"


def test_finish_reasons_map() -> None:
    def finish(reason: str) -> str | None:
        data = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
        return gemini.response_from_wire(data, "g", 0).choices[0].finish_reason

    assert finish("MAX_TOKENS") == "length"
    assert finish("SAFETY") == "content_filter"


def test_blocked_prompt_is_a_content_policy_error() -> None:
    with pytest.raises(ContentPolicyError):
        gemini.response_from_wire({"promptFeedback": {"blockReason": "SAFETY"}}, "g", 0)


def test_gemini_stream_translates_chunk_by_chunk() -> None:
    translator = gemini.StreamTranslator("gem", created=0)
    events = [
        {
            "candidates": [{"content": {"parts": [{"text": "Hel"}]}}],
            "usageMetadata": {"promptTokenCount": 4},
        },
        {
            "candidates": [{"content": {"parts": [{"text": "lo"}]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2},
        },
    ]
    chunks = [c for e in events for c in translator.feed(e)] + translator.close()
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 6
    assert translator.finished


def _candidate(
    index: int, text: str = "", finish: str | None = None, **extra: object
) -> dict[str, object]:
    candidate: dict[str, object] = {"content": {"role": "model", "parts": [{"text": text}]}}
    if index:  # Gemini's JSON leaves out a zero index
        candidate["index"] = index
    if finish:
        candidate["finishReason"] = finish
    return {**candidate, **extra}


def test_gemini_stream_keeps_each_candidates_own_index() -> None:
    translator = gemini.StreamTranslator("gem", created=0)
    call = {"functionCall": {"name": "f", "args": {}}}
    events = [
        {"candidates": [_candidate(0, "A1"), _candidate(1, "B1")]},
        {"candidates": [_candidate(1, "B2", "STOP")]},
        {"candidates": [_candidate(0, "", content={"parts": [call]})]},
        {"candidates": [_candidate(0, "A2", "STOP")], "usageMetadata": {"promptTokenCount": 3}},
    ]
    chunks = []
    for event in events:
        chunks += translator.feed(event)
        if event is events[1]:
            assert not translator.finished  # candidate 0 is still going
    assert translator.finished
    by_index: dict[int, list[object]] = {0: [], 1: []}
    finishes: dict[int, str | None] = {}
    for chunk in chunks:
        (choice,) = chunk.choices
        by_index[choice.index].append(choice.delta.content)
        if choice.finish_reason:
            finishes[choice.index] = choice.finish_reason
        if choice.delta.tool_calls:
            assert choice.index == 0
            assert choice.delta.tool_calls[0]["index"] == 0  # tool calls numbered per choice
    assert by_index[0][0] == by_index[1][0] == ""  # each choice opens with its role
    assert "".join(t for t in by_index[0] if t) == "A1A2"
    assert "".join(t for t in by_index[1] if t) == "B1B2"
    assert finishes == {0: "tool_calls", 1: "stop"}


def test_gemini_response_keeps_each_candidates_own_index() -> None:
    completion = gemini.response_from_wire(
        {"candidates": [_candidate(1, "B", "STOP"), _candidate(0, "A", "STOP")]}, "g", 0
    )
    assert [(c.index, c.message.content) for c in completion.choices] == [(1, "B"), (0, "A")]
