"""``response_format`` on the real local model: llama.cpp grammars keep SmolLM2 to JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from gatehouse.core.config import LocalChatConfig
from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.providers.local.chat import LlamaChatProvider

PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 24},
        "age": {"type": "integer"},
        "pets": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    },
    "required": ["name", "age", "pets"],
    "additionalProperties": False,
}
PERSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}
ASK = "Describe a person called Ada, aged 36, who has two cats."
# A free-form JSON object has no length bound: a prompt this small model closes.
ASK_OK = 'Return {"ok": true} as JSON.'


def request(
    response_format: dict[str, Any] | None, content: str = ASK, **fields: object
) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {
            "model": "local/smollm2",
            "temperature": 0,
            "max_tokens": 120,
            "messages": [{"role": "user", "content": content}],
            **({"response_format": response_format} if response_format else {}),
            **fields,
        }
    )


def assert_person(text: str) -> None:
    person = json.loads(text)
    assert set(person) == {"name", "age", "pets"}
    assert isinstance(person["name"], str)
    assert len(person["name"]) <= 24
    assert isinstance(person["age"], int)
    assert isinstance(person["pets"], list)
    assert len(person["pets"]) <= 3
    assert all(isinstance(pet, str) for pet in person["pets"])


@pytest.fixture
async def provider() -> AsyncIterator[LlamaChatProvider]:
    chat = LlamaChatProvider(LocalChatConfig(max_sequences=4))
    yield chat
    await chat.aclose()


async def test_json_object_answers_one_json_object(provider: LlamaChatProvider) -> None:
    completion = await provider.complete(request({"type": "json_object"}, ASK_OK))
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"  # the grammar let the turn end once the object closed
    assert json.loads(choice.message.content or "") == {"ok": True}


async def test_json_schema_answers_match_the_schema_streamed_or_not(
    provider: LlamaChatProvider,
) -> None:
    completion = await provider.complete(request(PERSON_FORMAT))
    text = completion.choices[0].message.content or ""
    assert_person(text)
    pieces = [
        choice.delta.content or ""
        async for chunk in provider.stream(request(PERSON_FORMAT))
        for choice in chunk.choices
    ]
    assert "".join(pieces) == text


async def test_constrained_and_free_requests_share_decode_steps(
    provider: LlamaChatProvider,
) -> None:
    free = request(None, max_tokens=40)
    free_alone = (await provider.complete(free)).choices[0].message.content
    together = await asyncio.gather(
        provider.complete(free),
        provider.complete(request(PERSON_FORMAT, temperature=0.8, seed=1)),
        provider.complete(request({"type": "json_object"}, ASK_OK, temperature=0.8, seed=2)),
        provider.complete(request(PERSON_FORMAT, temperature=0.8, seed=3)),
    )
    text, person, anything, other_person = (c.choices[0].message.content or "" for c in together)
    assert text == free_alone  # a neighbour's grammar never leaks into another sequence
    assert_person(person)
    assert_person(other_person)
    assert isinstance(json.loads(anything), dict)
    sequences = provider._sequences
    assert sequences is not None
    assert sequences.largest_batch > 1


async def test_a_schema_that_cannot_be_compiled_is_refused(provider: LlamaChatProvider) -> None:
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}}}
    with pytest.raises(ValidationFailedError) as caught:
        await provider.complete(request(bad))
    assert caught.value.param == "response_format"


def test_the_server_answers_an_uncompilable_schema_with_a_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="default",
            messages=[{"role": "user", "content": "hi"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "maxLength": 10**7}},
            },
        )
    assert caught.value.code == "invalid_value"
    assert caught.value.param == "response_format"  # type: ignore[attr-defined]
    reply = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": ASK}],
        response_format=PERSON_FORMAT,  # type: ignore[arg-type]
        max_tokens=120,
        temperature=0,
    )
    assert_person(reply.choices[0].message.content or "")
