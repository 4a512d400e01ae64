"""Request complexity limits: each is an OpenAI-shaped 400 naming the field.

Through the same decoding the routes use (``server.http.decode_body``), and the
Responses face, whose translation must not turn a limit into a 500.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.types import (
    MAX_CHOICES,
    MAX_EMBEDDING_INPUTS,
    MAX_MESSAGES,
    MAX_TOOL_BYTES,
    MAX_TOOLS,
    ChatCompletionRequest,
    EmbeddingRequest,
)
from gatehouse.faces import responses as responses_face
from gatehouse.faces.responses_input import input_items
from gatehouse.server.http import decode_body

USER = {"role": "user", "content": "hi"}


def _tool(name: str, padding: int = 0) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": "x" * padding,
            "parameters": {"type": "object", "properties": {}},
        },
    }


def _chat(**fields: Any) -> ChatCompletionRequest:
    body = orjson.dumps({"model": "m", "messages": [USER], **fields})
    return decode_body("application/json", body, ChatCompletionRequest)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": [USER] * (MAX_MESSAGES + 1)}, "messages"),
        ({"tools": [_tool(f"t{i}") for i in range(MAX_TOOLS + 1)]}, "tools"),
        ({"tools": [_tool("big", padding=MAX_TOOL_BYTES)]}, "tools"),
        ({"n": MAX_CHOICES + 1}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
    ids=["messages", "tool-count", "tool-size", "n", "stop", "max_tokens"],
)
def test_chat_requests_past_a_limit_are_refused_naming_the_field(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(ValidationFailedError) as raised:
        _chat(**fields)
    assert raised.value.http_status == 400
    assert raised.value.param == param


def test_requests_at_the_limits_are_accepted() -> None:
    request = _chat(
        messages=[USER] * MAX_MESSAGES,
        tools=[_tool(f"t{i}", padding=1000) for i in range(MAX_TOOLS)],
        n=MAX_CHOICES,
    )
    assert len(request.messages) == MAX_MESSAGES
    assert request.tools is not None
    assert len(request.tools) == MAX_TOOLS


def test_embedding_inputs_are_limited_but_a_token_id_list_is_one_input() -> None:
    body = orjson.dumps({"model": "m", "input": ["x"] * (MAX_EMBEDDING_INPUTS + 1)})
    with pytest.raises(ValidationFailedError) as raised:
        decode_body("application/json", body, EmbeddingRequest)
    assert raised.value.param == "input"
    ids = orjson.dumps({"model": "m", "input": list(range(MAX_EMBEDDING_INPUTS + 10))})
    assert len(decode_body("application/json", ids, EmbeddingRequest).texts()) == 0


def test_a_responses_request_past_the_tool_limit_is_a_400_not_a_500() -> None:
    tools = [
        {"type": "function", "name": f"t{i}", "parameters": {"type": "object"}}
        for i in range(MAX_TOOLS + 1)
    ]
    request = responses_face.ResponsesRequest.model_validate(
        {"model": "m", "input": "hi", "tools": tools}
    )
    with pytest.raises(ValidationFailedError) as raised:
        responses_face.to_openai(request, input_items(request.input))
    assert raised.value.param == "tools"
