"""Reasoning items on the Responses API: Claude's thinking and Gemini's signatures across turns.

The stream and the response are checked against the official ``openai``
SDK's models, and each turn goes on the way the SDK's users send it: the
previous output items as input (or chained by ``previous_response_id``).
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from gatehouse.core.errors import InvalidRequestError
from gatehouse.faces import responses as face
from gatehouse.faces.responses_input import input_items, output_as_input
from gatehouse.faces.responses_items import ReasoningItem
from gatehouse.faces.responses_stream import StreamTranslator
from gatehouse.providers.anthropic import translate as anthropic
from gatehouse.providers.gemini import translate as gemini

SDK_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
SIGNATURE = "EqQBCkYIBxgCKkDl3T0yWn1vXb8mR5oQ2cM4kT9sQ1fZ0hG7jP6uA2xY8rN3bV5w=="
GEMINI_SIGNATURE = "CiQB0e2Kb3KcYd9XnQFz1m8s7pWqLr2uVtY6hJ4gF5dS3aZ0x+/=="
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
REQUEST = {"model": "m", "input": "Weather in Paris?", "tools": [TOOL]}
CLAUDE_ANSWER = {
    "id": "msg_01",
    "model": "claude",
    "content": [
        {"type": "thinking", "thinking": "Look it up.", "signature": SIGNATURE},
        {"type": "tool_use", "id": "toolu_P", "name": "get_weather", "input": {"city": "Paris"}},
    ],
    "stop_reason": "tool_use",
    "usage": {"input_tokens": 10, "output_tokens": 5},
}


def _ids() -> Any:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def _next_turn(previous: Any) -> Any:
    """The second request: the first one's input, its output items, then the tool's output."""
    request = face.ResponsesRequest.model_validate(REQUEST)
    call = next(item for item in previous.output if item.type == "function_call")
    items = [
        *input_items(request.input, _ids()),
        *output_as_input(previous),
        *input_items([{"type": "function_call_output", "call_id": call.call_id, "output": "18C"}]),
    ]
    return face.to_openai(request, items)


def test_claude_thinking_round_trips_through_a_responses_client() -> None:
    request = face.ResponsesRequest.model_validate(REQUEST)
    shell = face.shell(request, response_id="resp_1", created_at=0)
    completion = anthropic.response_from_wire(CLAUDE_ANSWER, created=0)
    response = face.from_openai(completion, shell, _ids())
    SDKResponse.model_validate(response.model_dump(mode="json"))
    reasoning = response.output[0]
    assert isinstance(reasoning, ReasoningItem)
    assert reasoning.summary[0].text == "Look it up."
    body = anthropic.request_to_wire(_next_turn(response), "claude")
    assert body["messages"][1]["content"] == CLAUDE_ANSWER["content"]


def test_streamed_gemini_signatures_round_trip_through_a_responses_client() -> None:
    events = [
        {"candidates": [{"content": {"parts": [{"text": "Hmm.", "thought": True}]}}]},
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {
                                "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                                "thoughtSignature": GEMINI_SIGNATURE,
                            }
                        ]
                    },
                    "finishReason": "STOP",
                }
            ],
            "responseId": "g1",
        },
    ]
    upstream = gemini.StreamTranslator("gemini", created=0)
    chunks = [chunk for event in events for chunk in upstream.feed(event)] + upstream.close()
    request = face.ResponsesRequest.model_validate({**REQUEST, "stream": True})
    translator = StreamTranslator(face.shell(request, response_id="resp_1", created_at=0), _ids())
    frames = [frame for chunk in chunks for frame in translator.feed(chunk)]
    frames += translator.close()
    frames.append(translator.complete())
    kinds = []
    for frame in frames:
        event = SDK_EVENT.validate_python(orjson.loads(frame.split(b"data: ", 1)[1]))
        kinds.append(event.type)
    assert kinds[2:7] == [
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
    ]
    assert translator.response is not None
    body = gemini.request_to_wire(_next_turn(translator.response), "gemini-3-pro-preview")
    assert body["contents"][1]["parts"] == [
        {
            "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
            "thoughtSignature": GEMINI_SIGNATURE,
        }
    ]


@pytest.mark.parametrize(
    ("item", "param"),
    [
        (
            {"type": "reasoning", "summary": [], "encrypted_content": "gAAAAB..."},
            "encrypted_content",
        ),
        ({"type": "reasoning", "summary": [], "encrypted_content": "gh1.!!"}, "encrypted_content"),
        ({"type": "reasoning", "summary": [{"type": "summary_text"}]}, "summary[0]"),
        (
            {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text"}]},
            "content",
        ),
        ({"type": "reasoning", "summary": [], "extra": 1}, "extra"),
    ],
)
def test_reasoning_items_gatehouse_cannot_read_are_refused_by_name(
    item: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        input_items([{"role": "user", "content": "hi"}, item])
    assert caught.value.param == f"input[1].{param}"
