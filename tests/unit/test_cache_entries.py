"""Cache entries: a completion stored once answers a stream and the other way
round, carrying what the caller's face needs (here: the stop sequence)."""

from __future__ import annotations

from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    Choice,
    Usage,
    stop_fields,
    stop_sequence_of,
)
from gatehouse.gateway.cache.entries import (
    decode_completion,
    decode_stream,
    encode_completion,
    encode_stream,
)

USAGE = Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5)


def _completion(stop: str | None) -> ChatCompletion:
    choice = Choice(
        message=AssistantMessage(content="1, 2, 3, "), finish_reason="stop", **stop_fields(stop)
    )
    return ChatCompletion(id="c", created=0, model="m", choices=[choice], usage=USAGE)


def test_the_stop_sequence_survives_a_stored_completion_replayed_as_a_stream_and_back() -> None:
    for stop in ("4", None):
        chunks, usage = decode_stream(encode_completion(_completion(stop)))
        assert usage == USAGE
        assert stop_sequence_of(chunks[-1].choices[0]) == stop
        assembled = decode_completion(encode_stream(chunks, usage))
        assert assembled.choices[0].message.content == "1, 2, 3, "
        assert stop_sequence_of(assembled.choices[0]) == stop
        assert ("stop_reason" in assembled.choices[0].model_dump()) is (stop is not None)
