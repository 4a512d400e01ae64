"""Cache entries: how a completion or a recorded stream is stored and replayed.

An entry is one tag byte and a JSON payload: ``C`` a whole completion,
``S`` the chunks of a stream plus its usage. A stream entry replays the same
chunks; either kind answers either mode (a streamed request hitting a stored
completion gets it as chunks, and the reverse), because the key does not
depend on ``stream``. Usage is stored apart from the chunks and added to a
replay only when the caller asked for it (``stream_options.include_usage``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import orjson

from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
    stop_fields,
    stop_sequence_of,
)

_COMPLETION = b"C"
_STREAM = b"S"


def encode_completion(completion: ChatCompletion) -> bytes:
    return _COMPLETION + completion.model_dump_json().encode()


def encode_stream(chunks: Iterable[ChatCompletionChunk], usage: Usage | None) -> bytes:
    payload = {
        "chunks": [chunk.model_dump(mode="json") for chunk in chunks],
        "usage": usage.model_dump() if usage is not None else None,
    }
    return _STREAM + orjson.dumps(payload)


def decode_completion(raw: bytes) -> ChatCompletion:
    """The entry as one completion, assembling a stored stream when needed."""
    if raw[:1] == _COMPLETION:
        return ChatCompletion.model_validate_json(raw[1:])
    chunks, usage = _stream_payload(raw)
    return assemble(chunks, usage)


def decode_stream(raw: bytes) -> tuple[list[ChatCompletionChunk], Usage | None]:
    """The entry as stream chunks (without the usage chunk) and its usage."""
    if raw[:1] == _STREAM:
        return _stream_payload(raw)
    completion = ChatCompletion.model_validate_json(raw[1:])
    return split(completion), completion.usage


def _stream_payload(raw: bytes) -> tuple[list[ChatCompletionChunk], Usage | None]:
    if raw[:1] != _STREAM:
        raise ValueError("not a cache entry")
    payload = orjson.loads(raw[1:])
    chunks = [ChatCompletionChunk.model_validate(chunk) for chunk in payload["chunks"]]
    usage = Usage.model_validate(payload["usage"]) if payload["usage"] is not None else None
    return chunks, usage


async def replay(
    chunks: list[ChatCompletionChunk], usage: Usage | None, *, include_usage: bool
) -> AsyncIterator[ChatCompletionChunk]:
    """Yield the stored chunks, then a usage chunk if the caller asked for one."""
    for chunk in chunks:
        yield chunk
    if include_usage and usage is not None and chunks:
        yield usage_chunk(chunks[-1], usage)


def usage_chunk(template: ChatCompletionChunk, usage: Usage) -> ChatCompletionChunk:
    """The final, choice-less chunk that carries usage, as OpenAI sends it."""
    return ChatCompletionChunk(
        id=template.id,
        created=template.created,
        model=template.model,
        choices=[],
        usage=usage,
        system_fingerprint=template.system_fingerprint,
    )


def is_usage_only(chunk: ChatCompletionChunk) -> bool:
    return chunk.usage is not None and not chunk.choices


def split(completion: ChatCompletion) -> list[ChatCompletionChunk]:
    """A completion as the chunks a stream of it would have carried."""

    def chunk(choices: list[ChunkChoice]) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=completion.id,
            created=completion.created,
            model=completion.model,
            choices=choices,
            system_fingerprint=completion.system_fingerprint,
        )

    out = [
        chunk(
            [
                ChunkChoice(index=c.index, delta=Delta(role="assistant", content=""))
                for c in completion.choices
            ]
        )
    ]
    for c in completion.choices:
        if c.message.content:
            out.append(chunk([ChunkChoice(index=c.index, delta=Delta(content=c.message.content))]))
    out.append(
        chunk(
            [
                ChunkChoice(
                    index=c.index,
                    delta=Delta(),
                    finish_reason=c.finish_reason,
                    **stop_fields(stop_sequence_of(c)),
                )
                for c in completion.choices
            ]
        )
    )
    return out


def assemble(chunks: list[ChatCompletionChunk], usage: Usage | None) -> ChatCompletion:
    """A stream's chunks folded into the completion a non-streamed call returns."""
    if not chunks:
        raise ValueError("an empty stream cannot be assembled")
    texts: dict[int, list[str]] = {}
    finish: dict[int, str | None] = {}
    stops: dict[int, str | None] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts.setdefault(choice.index, [])
            if choice.delta.content:
                texts[choice.index].append(choice.delta.content)
            if choice.finish_reason is not None:
                finish[choice.index] = choice.finish_reason
                stops[choice.index] = stop_sequence_of(choice)
    first = chunks[0]
    return ChatCompletion(
        id=first.id,
        created=first.created,
        model=first.model,
        choices=[
            Choice(
                index=index,
                message=AssistantMessage(content="".join(parts)),
                finish_reason=finish.get(index),
                **stop_fields(stops.get(index)),
            )
            for index, parts in sorted(texts.items())
        ],
        usage=usage or Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0),
        system_fingerprint=first.system_fingerprint,
    )
