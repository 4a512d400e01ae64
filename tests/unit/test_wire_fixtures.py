"""Recorded wire fixtures replayed through every translator, both directions, streamed and not.

Each file under ``tests/fixtures/wire/`` names a ``translator`` (one of
:data:`TRANSLATORS`), the ``input`` as it crosses the wire (a request body, an
answer, or a list of stream events) and the ``expected`` output. Usage is left
out of the comparison: its buckets have their own tests (test_pricing,
test_metering, test_translate_*), and a usage change must not rewrite these.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.faces import anthropic as messages_face
from gatehouse.faces import responses as responses_face
from gatehouse.faces.responses_input import input_items
from gatehouse.faces.responses_stream import StreamTranslator as ResponsesStream
from gatehouse.providers.anthropic import translate as anthropic
from gatehouse.providers.gemini import translate as gemini
from gatehouse.providers.openai_compat import translate as openai_compat

FIXTURES = Path(__file__).parents[1] / "fixtures" / "wire"


def _chat(data: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(data)


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json", exclude_none=True)


def _sse(frames: list[bytes]) -> list[dict[str, Any]]:
    """Server-sent event frames as ``{"event": name, "data": payload}`` (name if any)."""
    out = []
    for frame in frames:
        event: dict[str, Any] = {}
        for line in frame.decode().strip().split("\n"):
            key, _, value = line.partition(": ")
            event[key] = orjson.loads(value) if key == "data" else value
        out.append(event)
    return out


def _ids() -> Callable[[str], str]:
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter)}"


def _anthropic_stream(events: list[dict[str, Any]]) -> list[Any]:
    translator = anthropic.StreamTranslator(created=0)
    return [_dump(chunk) for event in events for chunk in translator.feed(event)]


def _gemini_stream(data: dict[str, Any]) -> list[Any]:
    translator = gemini.StreamTranslator(data["model"], created=0)
    chunks = [chunk for event in data["events"] for chunk in translator.feed(event)]
    return [_dump(chunk) for chunk in [*chunks, *translator.close()]]


def _messages_stream(chunks: list[dict[str, Any]]) -> list[Any]:
    translator = messages_face.StreamTranslator("claude-via-gatehouse")
    frames = [f for c in chunks for f in translator.feed(ChatCompletionChunk.model_validate(c))]
    return _sse([*frames, *translator.close()])


def _responses_request(body: dict[str, Any]) -> Any:
    request = responses_face.ResponsesRequest.model_validate(body)
    return _dump(responses_face.to_openai(request, input_items(request.input, _ids())))


def _responses_answer(data: dict[str, Any]) -> Any:
    request = responses_face.ResponsesRequest.model_validate(data["request"])
    shell = responses_face.shell(request, response_id="resp_1", created_at=0)
    completion = ChatCompletion.model_validate(data["completion"])
    return responses_face.from_openai(completion, shell, _ids()).model_dump(mode="json")


def _responses_stream(data: dict[str, Any]) -> list[Any]:
    request = responses_face.ResponsesRequest.model_validate(data["request"])
    translator = ResponsesStream(
        responses_face.shell(request, response_id="resp_1", created_at=0), _ids()
    )
    frames = [
        frame
        for chunk in data["chunks"]
        for frame in translator.feed(ChatCompletionChunk.model_validate(chunk))
    ]
    frames += translator.close()
    frames.append(translator.complete())
    return _sse(frames)


TRANSLATORS: dict[str, Callable[[Any], Any]] = {
    # gatehouse calling an upstream, and its answer back
    "chat_to_anthropic": lambda body: anthropic.request_to_wire(_chat(body), "claude-sonnet-4-5"),
    "anthropic_to_chat": lambda data: _dump(anthropic.response_from_wire(data, created=0)),
    "anthropic_sse_to_chat": _anthropic_stream,
    "chat_to_gemini": lambda data: gemini.request_to_wire(_chat(data["body"]), data["model"]),
    "gemini_to_chat": lambda data: _dump(gemini.response_from_wire(data, "gemini", created=0)),
    "gemini_sse_to_chat": _gemini_stream,
    "chat_to_openai": lambda body: openai_compat.chat_to_wire(_chat(body), "upstream-model"),
    # a client's dialect in, and the answer out in it
    "messages_to_chat": lambda body: _dump(
        messages_face.to_openai(messages_face.MessagesRequest.model_validate(body))
    ),
    "chat_to_messages": lambda data: messages_face.from_openai(
        ChatCompletion.model_validate(data), "claude-via-gatehouse"
    ),
    "chat_sse_to_messages": _messages_stream,
    "responses_to_chat": _responses_request,
    "chat_to_responses": _responses_answer,
    "chat_sse_to_responses": _responses_stream,
}


def without_usage(value: Any) -> Any:
    """``value`` with every ``usage`` (and Gemini ``usageMetadata``) left out."""
    if isinstance(value, dict):
        return {
            k: without_usage(v) for k, v in value.items() if k not in ("usage", "usageMetadata")
        }
    if isinstance(value, list):
        return [without_usage(v) for v in value]
    return value


def replay(fixture: dict[str, Any]) -> Any:
    return without_usage(TRANSLATORS[fixture["translator"]](fixture["input"]))


def fixture_files() -> list[Path]:
    return sorted(FIXTURES.glob("*/*.json"))


def test_every_translator_has_a_fixture_streamed_and_not() -> None:
    used = {orjson.loads(path.read_bytes())["translator"] for path in fixture_files()}
    assert used == set(TRANSLATORS)


@pytest.mark.parametrize("path", fixture_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fixture_replays_to_its_expected_output(path: Path) -> None:
    fixture = orjson.loads(path.read_bytes())
    assert fixture["description"]
    assert replay(fixture) == fixture["expected"]
