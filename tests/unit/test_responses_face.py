"""The Responses API face: request -> chat completion, chat answer -> response, stream events.

Pure translation, no I/O. The stream events are checked against the official
``openai`` SDK's own models of them, so a shape the SDK cannot parse fails here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gatehouse.core.errors import (
    InvalidRequestError,
    UnsupportedParameterError,
    UpstreamError,
    ValidationFailedError,
)
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk
from gatehouse.faces import responses as face
from gatehouse.faces.responses_input import input_item_page, input_items
from gatehouse.faces.responses_items import FunctionCallItem, MessageItem, ResponseObject
from gatehouse.faces.responses_stream import StreamTranslator

SDK_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
CODEX_REQUEST = Path(__file__).parents[1] / "fixtures" / "responses" / "codex_request.json"

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}

# A second turn of a tool conversation, as the openai SDK sends it: the
# model's text and two parallel calls from the first turn, then their outputs.
TOOL_TURN: dict[str, Any] = {
    "model": "gpt-test",
    "instructions": "Be brief.",
    "input": [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_a",
            "name": "get_weather",
            "arguments": '{"city": "Paris"}',
        },
        {
            "type": "function_call",
            "id": "fc_2",
            "call_id": "call_b",
            "name": "get_weather",
            "arguments": '{"city": "Oslo"}',
        },
        {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
        {
            "type": "function_call_output",
            "call_id": "call_b",
            "output": [{"type": "input_text", "text": "snow"}],
        },
    ],
    "tools": [WEATHER_TOOL],
    "tool_choice": {"type": "function", "name": "get_weather"},
    "parallel_tool_calls": True,
    "max_output_tokens": 64,
    "temperature": 0.5,
    "top_p": 0.9,
    "reasoning": {"effort": "low", "summary": "auto"},
    "text": {
        "format": {
            "type": "json_schema",
            "name": "weather",
            "schema": {"type": "object"},
            "strict": True,
        },
        "verbosity": "low",
    },
    "metadata": {"run": "7"},
    "user": "u-1",
}


def ids() -> face.IdFactory:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def request(**fields: Any) -> face.ResponsesRequest:
    return face.ResponsesRequest.model_validate({"model": "gpt-test", **fields})


def to_chat(**fields: Any) -> dict[str, Any]:
    body = request(**fields)
    chat = face.to_openai(body, input_items(body.input))
    return chat.model_dump(exclude_unset=True, exclude_none=True)


# -- request -> chat ----------------------------------------------------------------


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    chat = to_chat(input="Hello", instructions="Be terse.")
    assert chat["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hello"},
    ]
    assert "stream" not in chat


def test_a_tool_turn_maps_every_field() -> None:
    chat = to_chat(**{k: v for k, v in TOOL_TURN.items() if k != "model"})
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "snow"},
    ]
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "The weather in a city",
                "parameters": WEATHER_TOOL["parameters"],
                "strict": True,
            },
        }
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["parallel_tool_calls"] is True
    assert chat["max_completion_tokens"] == 64
    assert (chat["temperature"], chat["top_p"]) == (0.5, 0.9)
    assert chat["reasoning_effort"] == "low"
    assert chat["verbosity"] == "low"
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "weather", "schema": {"type": "object"}, "strict": True},
    }
    assert chat["user"] == "u-1"
    assert "metadata" not in chat  # the response's own metadata, echoed, never sent upstream


def test_streaming_always_asks_the_upstream_for_usage() -> None:
    chat = to_chat(input="Hi", stream=True)
    assert chat["stream"] is True
    assert chat["stream_options"] == {"include_usage": True}


def test_json_object_images_and_developer_messages() -> None:
    chat = to_chat(
        input=[
            {"role": "developer", "content": "Answer in JSON."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                ],
            },
        ],
        text={"format": {"type": "json_object"}},
    )
    assert chat["response_format"] == {"type": "json_object"}
    assert chat["messages"] == [
        {"role": "system", "content": "Answer in JSON."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "auto"},
                },
            ],
        },
    ]


def test_a_call_with_no_text_before_it_is_an_assistant_turn_of_its_own() -> None:
    chat = to_chat(
        input=[
            {"role": "user", "content": "Go"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
        ]
    )
    assert chat["messages"][1] == {  # no content (None, left out of the dump)
        "role": "assistant",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }


def test_input_items_get_ids_and_keep_the_ones_given() -> None:
    items = input_items(TOOL_TURN["input"], ids())
    assert [item.id for item in items] == ["msg_1", "msg_1", "fc_1", "fc_2", "fco_2", "fco_3"]
    assert isinstance(items[2], FunctionCallItem)
    assert items[2].call_id == "call_a"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"tools": [{**WEATHER_TOOL, "defer_loading": True}]}, "tools[0].defer_loading"),
        ({"tool_choice": {"type": "file_search"}}, "tool_choice.type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"input": [{"type": "input_file", "file_id": "f"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call", "id": "w"}]}, "input[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input[0].content[0].type",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input[0].content[0].file_id",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "x", "cache_control": {"type": "a"}}
                        ],
                    }
                ]
            },
            "input[0].content[0].cache_control",
        ),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        ({"input": [{"role": "user", "content": 7}]}, "input[0].content"),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0].call_id"),
        (
            {"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]},
            "input[0].output",
        ),
        ({"text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format"),
        ({"reasoning": {"effort": "enormous"}}, "reasoning.effort"),
        ({"background": True}, "background"),
        ({"truncation": "auto"}, "truncation"),
        ({"include": ["file_search_call.results"]}, "include[0]"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"max_tool_calls": 3}, "max_tool_calls"),
        ({"input": []}, "input"),
    ],
)
def test_what_cannot_be_translated_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    fields.setdefault("input", "Hi")
    with pytest.raises(InvalidRequestError) as caught:
        to_chat(**fields)
    assert caught.value.param == param
    assert caught.value.http_status == 400
    assert isinstance(caught.value, UnsupportedParameterError | ValidationFailedError)


def test_a_request_recorded_from_codex_cli_translates() -> None:
    body = face.ResponsesRequest.model_validate(orjson.loads(CODEX_REQUEST.read_bytes()))
    items = input_items(body.input)
    chat = face.to_openai(body, items).model_dump(exclude_unset=True, exclude_none=True)
    assert [m["role"] for m in chat["messages"]] == ["system", "system", "user", "user"]
    assert chat["messages"][-1]["content"] == "reply with the word ready"
    assert [t["function"]["name"] for t in chat["tools"]] == ["exec_command", "view_image"]
    assert chat["stream_options"] == {"include_usage": True}
    assert chat["prompt_cache_key"] == body.prompt_cache_key
    assert "client_metadata" not in chat
    assert "reasoning_effort" not in chat
    assert items[0].id == "msg_725301ec-3f59-5868-a03f-7f46643a4544"  # the client's ids kept
    assert not body.stores


def test_unknown_fields_are_refused_by_pydantic_not_dropped() -> None:
    with pytest.raises(ValueError, match="web_search_options"):
        request(input="Hi", web_search_options={})


def test_neutral_values_of_unsupported_fields_pass() -> None:
    chat = to_chat(
        input="Hi",
        background=False,
        truncation="disabled",
        top_logprobs=0,
        include=["reasoning.encrypted_content"],
    )
    assert chat["messages"] == [{"role": "user", "content": "Hi"}]


AGENTS_NAMESPACE = {
    "type": "namespace",
    "name": "agents",
    "description": "Sub-agents.",
    "tools": [
        {"type": "function", "name": "spawn", "description": "Start one.", "parameters": {}},
        {"type": "function", "name": "wait", "parameters": {}},
    ],
}


def test_a_namespace_tool_is_one_chat_function_per_function() -> None:
    chat = to_chat(
        input=[
            {"role": "user", "content": "Go"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "spawn",
                "namespace": "agents",
                "arguments": "{}",
            },
            {"type": "function_call_output", "call_id": "c1", "output": "started"},
        ],
        tools=[WEATHER_TOOL, AGENTS_NAMESPACE],
        tool_choice={"type": "function", "name": "wait", "namespace": "agents"},
    )
    functions = [tool["function"] for tool in chat["tools"]]
    assert [(f["name"], f.get("description")) for f in functions] == [
        ("get_weather", "The weather in a city"),
        ("agents__spawn", "Sub-agents. Start one."),
        ("agents__wait", "Sub-agents."),
    ]
    assert chat["messages"][1]["tool_calls"][0]["function"]["name"] == "agents__spawn"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "agents__wait"}}


@pytest.mark.parametrize(
    ("tools", "param"),
    [
        (
            [{**AGENTS_NAMESPACE, "tools": [{"type": "custom", "name": "x"}]}],
            "tools[0].tools[0].type",
        ),
        ([{**AGENTS_NAMESPACE, "tools": []}], "tools[0].tools"),
        ([AGENTS_NAMESPACE, {**WEATHER_TOOL, "name": "agents__spawn"}], "tools"),
    ],
)
def test_namespace_tools_that_cannot_be_translated(tools: list[Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        to_chat(input="Hi", tools=tools)
    assert caught.value.param == param


# -- chat answer -> response --------------------------------------------------------


def completion(message: dict[str, Any], finish: str, usage: dict[str, Any]) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": "chatcmpl-1",
            "created": 0,
            "model": "gpt-test-2026",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
    )


USAGE = {
    "prompt_tokens": 100,
    "completion_tokens": 40,
    "total_tokens": 140,
    "prompt_tokens_details": {"cached_tokens": 64, "cache_write_tokens": 8},
    "completion_tokens_details": {"reasoning_tokens": 12},
}


def shell(**fields: Any) -> ResponseObject:
    body = request(input="Hi", **fields)
    return face.shell(body, response_id="resp_1", created_at=1_780_000_000)


def test_a_tool_calling_answer_becomes_text_then_function_call_items() -> None:
    answer = completion(
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
                {
                    "id": "call_x",  # a duplicate id: replaced, ids are unique per response
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Bern"}'},
                },
            ],
        },
        "tool_calls",
        USAGE,
    )
    response = face.from_openai(answer, shell(tools=[WEATHER_TOOL], metadata={"a": "b"}), ids())
    parsed = SDKResponse.model_validate(response.model_dump(mode="json"))
    assert parsed.status == "completed"
    assert parsed.output_text == "Let me look."
    assert [item.type for item in parsed.output] == ["message", "function_call", "function_call"]
    calls = [item for item in parsed.output if item.type == "function_call"]
    assert [c.call_id for c in calls] == ["call_x", "call_3"]
    assert calls[1].arguments == '{"city":"Bern"}'
    assert parsed.metadata == {"a": "b"}
    assert parsed.model == "gpt-test"  # the name the client asked for
    assert parsed.usage is not None
    assert parsed.usage.input_tokens == 100
    assert parsed.usage.input_tokens_details.cached_tokens == 64
    assert parsed.usage.input_tokens_details.cache_write_tokens == 8
    assert parsed.usage.output_tokens == 40
    assert parsed.usage.output_tokens_details.reasoning_tokens == 12
    assert parsed.usage.total_tokens == 140


def test_a_call_of_a_namespaced_function_names_its_namespace() -> None:
    call = {"id": "call_n", "type": "function", "function": {"name": "agents__spawn"}}
    answer = completion(
        {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls", USAGE
    )
    response = face.from_openai(answer, shell(tools=[AGENTS_NAMESPACE]), ids())
    parsed = SDKResponse.model_validate(response.model_dump(mode="json"))
    [item] = parsed.output
    assert item.type == "function_call"
    assert (item.namespace, item.name, item.call_id) == ("agents", "spawn", "call_n")

    translator = StreamTranslator(shell(tools=[AGENTS_NAMESPACE]), ids())
    raw = translator.feed(chunk(call_delta(0, "{}", call_id="call_m", name="agents__wait")))
    events = list(parse([*raw, *translator.close(), translator.complete()]))
    added = next(e for e in events if e.type == "response.output_item.added")
    assert (added.item.namespace, added.item.name) == ("agents", "wait")
    assert (events[-1].response.output[0].namespace, events[-1].response.output[0].name) == (
        "agents",
        "wait",
    )


def test_a_length_capped_answer_is_incomplete() -> None:
    answer = completion({"role": "assistant", "content": "Once upon"}, "length", USAGE)
    response = face.from_openai(answer, shell(max_output_tokens=2), ids())
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.max_output_tokens == 2


def test_an_empty_answer_is_one_empty_message() -> None:
    answer = completion({"role": "assistant", "content": None}, "stop", USAGE)
    response = face.from_openai(answer, shell(), ids())
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text() == ""


# -- stream -------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def usage_chunk() -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate(
        {"id": "c", "created": 0, "model": "m", "choices": [], "usage": USAGE}
    )


def call_delta(
    index: int, arguments: str, *, call_id: str | None = None, name: str | None = None
) -> dict[str, Any]:
    """A streamed tool-call delta; the first of a call carries its id and name."""
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call |= {"id": call_id, "type": "function"}
        call["function"]["name"] = name
    return {"tool_calls": [call]}


def parse(events: list[bytes]) -> Iterator[Any]:
    """Each event as the SDK types it; its SSE name must equal its type."""
    for raw in events:
        head, data = raw.split(b"\ndata: ", 1)
        event = SDK_EVENT.validate_python(orjson.loads(data))
        assert head == b"event: " + event.type.encode()
        yield event


def test_a_stream_of_text_then_interleaved_parallel_calls() -> None:
    translator = StreamTranslator(shell(tools=[WEATHER_TOOL]), ids())
    chunks = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Looking"}),
        chunk({"content": " up."}),
        chunk(call_delta(0, "", call_id="call_p", name="get_weather")),
        chunk(call_delta(0, '{"city":')),
        chunk(call_delta(1, '{"city":"Oslo"}', call_id="call_q", name="get_weather")),
        chunk(call_delta(0, '"Paris"}')),
        chunk({}, "tool_calls"),
        usage_chunk(),
    ]
    raw = [data for c in chunks for data in translator.feed(c)] + translator.close()
    raw.append(translator.complete())
    events = list(parse(raw))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[6].text == "Looking up."
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [(e.output_index, e.arguments) for e in done] == [
        (1, '{"city":"Paris"}'),
        (2, '{"city":"Oslo"}'),
    ]
    final = events[-1].response
    assert [item.type for item in final.output] == ["message", "function_call", "function_call"]
    assert [item.call_id for item in final.output[1:]] == ["call_p", "call_q"]
    assert final.usage.output_tokens_details.reasoning_tokens == 12
    assert translator.response is not None  # what the route stores: what the client saw
    assert translator.response.model_dump(mode="json")["output"] == [
        item.model_dump(mode="json", exclude_unset=True) for item in final.output
    ]


def test_a_capped_stream_ends_incomplete_and_an_empty_one_with_an_empty_message() -> None:
    translator = StreamTranslator(shell(), ids())
    raw = translator.feed(chunk({"content": "Once"})) + translator.feed(chunk({}, "length"))
    events = list(parse([*raw, *translator.close(), translator.complete()]))
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"

    empty = StreamTranslator(shell(), ids())
    events = list(parse([*empty.feed(chunk({}, "stop")), *empty.close(), empty.complete()]))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].content[0].text == ""


def test_an_upstream_failure_mid_stream_is_an_error_then_response_failed() -> None:
    translator = StreamTranslator(shell(), ids())
    raw = translator.feed(chunk({"content": "Hal"}))
    raw += translator.fail(UpstreamError("the upstream went away"))
    events = list(parse(raw))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2].message == "the upstream went away"
    failed = events[-1].response
    assert failed.status == "failed"
    assert failed.error.code == "server_error"
    assert translator.response is not None
    assert translator.response.status == "failed"


# -- stored input, page by page -----------------------------------------------------


def test_input_items_page_newest_first_by_default() -> None:
    items = [
        MessageItem.model_validate({"id": f"msg_{i}", "role": "user", "content": []})
        for i in range(5)
    ]
    first = input_item_page(items, limit=2)
    assert [i.id for i in first.data] == ["msg_4", "msg_3"]
    assert (first.first_id, first.last_id, first.has_more) == ("msg_4", "msg_3", True)
    second = input_item_page(items, limit=2, after="msg_3")
    assert [i.id for i in second.data] == ["msg_2", "msg_1"]
    last = input_item_page(items, limit=2, after="msg_1")
    assert ([i.id for i in last.data], last.has_more) == (["msg_0"], False)
    ascending = input_item_page(items, order="asc", limit=10)
    assert [i.id for i in ascending.data] == [f"msg_{i}" for i in range(5)]
    assert not ascending.has_more
    with pytest.raises(ValidationFailedError):
        input_item_page(items, after="msg_9")
