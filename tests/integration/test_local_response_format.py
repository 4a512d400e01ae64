"""``response_format`` on the real local model: llama.cpp grammars keep SmolLM2 to JSON."""

from __future__ import annotations

import asyncio
import ctypes
import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from gatehouse.core.config import LocalChatConfig
from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.providers.local.chat import LlamaChatProvider, packaged_model_path
from gatehouse.providers.local.grammar import Grammar
from gatehouse.providers.local.grammar_ranges import integer_range_rule

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
    # Free-form JSON sampled at 0.8 can run past max_tokens, and which text a seed
    # gives depends on the CPU's kernels: a cut answer is still the start of an object.
    if together[2].choices[0].finish_reason == "stop":
        assert isinstance(json.loads(anything), dict)
    else:
        assert anything.startswith("{"), anything
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


MEETING = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "maxLength": 40},
        "minutes": {"type": "integer", "minimum": 1, "maximum": 600},
    },
    "required": ["topic", "minutes"],
    "additionalProperties": False,
}
MEETING_FORMAT = {"type": "json_schema", "json_schema": {"name": "meeting", "schema": MEETING}}


async def test_a_bounded_integer_stays_in_range(provider: LlamaChatProvider) -> None:
    # Without the range in the grammar SmolLM2 wrote 1000 and more minutes here.
    asks = ["Describe a meeting about the office move on Thursday.", "Describe a lunch meeting."]
    for ask, seed in [(ask, seed) for ask in asks for seed in range(3)]:
        completion = await provider.complete(
            request(MEETING_FORMAT, ask, temperature=0.8, seed=seed, max_tokens=60)
        )
        meeting = json.loads(completion.choices[0].message.content or "")
        assert isinstance(meeting["minutes"], int)
        assert 1 <= meeting["minutes"] <= 600


@pytest.fixture(scope="module")
def vocab() -> Iterator[object]:
    """SmolLM2's vocabulary alone (no weights), for llama.cpp's grammar sampler."""
    import llama_cpp

    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(packaged_model_path()).encode(), params)
    assert model
    yield llama_cpp.llama_model_get_vocab(model)
    llama_cpp.llama_model_free(model)


def accepted_texts(vocab: object, rule: str, longest: int) -> set[str]:
    """Every text over ``-0123456789`` of at most ``longest`` characters that
    llama.cpp's grammar sampler lets end the turn under ``root ::= rule``: at each
    prefix, the characters it leaves unmasked are followed one by one."""
    import llama_cpp

    alphabet = "-0123456789"
    ids = {}
    for char in alphabet:
        out = (llama_cpp.llama_token * 4)()
        assert llama_cpp.llama_tokenize(vocab, char.encode(), 1, out, 4, False, True) == 1
        ids[char] = out[0]
    end = llama_cpp.llama_vocab_eos(vocab)
    candidates = [*ids.values(), end]
    found: set[str] = set()

    def allowed(sampler: object) -> list[int]:
        data = (llama_cpp.llama_token_data * len(candidates))(
            *(llama_cpp.llama_token_data(token, 0.0, 0.0) for token in candidates)
        )
        array = llama_cpp.llama_token_data_array(data, len(candidates), -1, False)
        llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
        return [entry.id for entry in data if math.isfinite(entry.logit)]

    def walk(sampler: object, text: str) -> None:
        unmasked = allowed(sampler)
        if end in unmasked:
            found.add(text)
        if len(text) == longest:
            return
        for char, token in ids.items():
            if token in unmasked:
                child = llama_cpp.llama_sampler_clone(sampler)
                llama_cpp.llama_sampler_accept(child, token)
                walk(child, text + char)
                llama_cpp.llama_sampler_free(child)

    start = Grammar(vocab, f"root ::= {rule}").sampler()
    walk(start, "")
    llama_cpp.llama_sampler_free(start)
    return found


BOUNDS = [None, -1000, -100, -10, -9, -1, 0, 1, 9, 10, 130, 600, 1000]


@pytest.mark.parametrize(
    ("low", "high"),
    [(a, b) for a in BOUNDS for b in BOUNDS if a is None or b is None or a <= b],
)
def test_llama_cpp_admits_exactly_the_integers_of_a_range(
    vocab: object, low: int | None, high: int | None
) -> None:
    # Every text of up to four characters: the integers -999..9999 and
    # everything malformed (leading zeros, "-0", stray signs).
    admitted = accepted_texts(vocab, integer_range_rule(low, high), longest=4)
    assert admitted == {
        str(n)
        for n in range(-999, 10_000)
        if (low is None or n >= low) and (high is None or n <= high)
    }
