"""The bodies of the token-counting routes, as canonical chat requests. Pure.

- ``POST /v1/messages/count_tokens``: a Messages API body without
  ``max_tokens`` (Anthropic's shape), mapped by the Messages face.
- ``POST /v1/responses/input_tokens``: the Responses API's ``input``
  (a string or items), ``instructions``, ``tools`` and ``text``, translated by
  the Responses face exactly as ``POST /v1/responses`` translates them, so a
  count is of the prompt a response would send. What it cannot count
  (``previous_response_id``, and whatever the face refuses) is a 400 naming
  the field, never a silent drop.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.faces import anthropic as messages_face
from gatehouse.faces import responses
from gatehouse.faces.responses_input import input_items


class CountTokensRequest(messages_face.MessagesRequest):
    """The body of ``POST /v1/messages/count_tokens``: ``max_tokens`` is not asked for."""

    max_tokens: int = Field(default=1, ge=1)


def messages_to_openai(request: CountTokensRequest) -> ChatCompletionRequest:
    return messages_face.to_openai(request.model_copy(update={"stream": False}))


class InputTokensRequest(BaseModel):
    """The body of ``POST /v1/responses/input_tokens`` (OpenAI's Responses shape)."""

    # What reaches no model (personality, a client's metadata, ...) is let by.
    model_config = ConfigDict(extra="allow")

    model: str | None = None
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning: dict[str, Any] | None = None
    text: dict[str, Any] | None = None
    truncation: str | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None


# What of a count body reaches the model, as the Responses face reads it.
_RESPONSES_FIELDS = {
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
    "truncation",
    "conversation",
}


def responses_to_openai(request: InputTokensRequest) -> ChatCompletionRequest:
    """The chat request whose prompt is what ``request`` would send the model: the
    Responses face's own translation (:func:`gatehouse.faces.responses.to_openai`)."""
    if not request.model:
        raise ValidationFailedError("'model' is required to count tokens", param="model")
    if request.previous_response_id is not None:
        raise UnsupportedParameterError(
            "'previous_response_id' is not supported when counting tokens: send the whole input",
            param="previous_response_id",
        )
    fields = request.model_dump(include=_RESPONSES_FIELDS, exclude_none=True)
    try:
        body = responses.ResponsesRequest.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ValidationFailedError(f"{where}: {error['msg']}", param=where) from None
    return responses.to_openai(body, input_items(body.input))
