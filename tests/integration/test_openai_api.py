"""The real server and the real local models, through the official openai SDK."""

from __future__ import annotations

import math
from typing import Any

import anthropic
import httpx
import openai
import pytest

from .conftest import RunningServer

USER = [{"role": "user", "content": "Name three colours."}]


def test_chat_completion_returns_text_and_exact_usage(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model="default", messages=USER, max_tokens=24, seed=1)
    assert reply.model == "local/smollm2"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content
    assert reply.choices[0].finish_reason in {"stop", "length"}
    usage = reply.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 0 < usage.completion_tokens <= 24
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_max_tokens_cuts_with_finish_reason_length(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="local/smollm2",
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        max_tokens=3,
        temperature=0,
    )
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 3


def test_stream_concatenates_to_the_non_streamed_text(client: openai.OpenAI) -> None:
    params = {
        "model": "default",
        "messages": USER,
        "max_tokens": 40,
        "seed": 42,
        "temperature": 0.9,
    }
    whole = client.chat.completions.create(**params)  # type: ignore[call-overload]
    stream = client.chat.completions.create(
        **params, stream=True, stream_options={"include_usage": True}
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    assert "".join(pieces) == whole.choices[0].message.content
    assert finish == whole.choices[0].finish_reason
    assert usage is not None
    assert usage.model_dump() == whole.usage.model_dump()


def test_stop_sequence_is_honoured(client: openai.OpenAI) -> None:
    free = client.chat.completions.create(
        model="default", messages=USER, max_tokens=30, temperature=0
    )
    text = free.choices[0].message.content or ""
    stop = text.strip().split()[1]  # the second word must cut the answer short
    cut = client.chat.completions.create(
        model="default", messages=USER, max_tokens=30, temperature=0, stop=[stop]
    )
    assert cut.choices[0].finish_reason == "stop"
    assert stop not in (cut.choices[0].message.content or "")
    assert text.startswith(cut.choices[0].message.content or "")
    assert cut.model_dump()["choices"][0]["stop_reason"] == stop  # as vLLM names it
    assert "stop_reason" not in free.model_dump()["choices"][0]


def test_the_messages_api_names_the_stop_sequence_that_ended_an_answer(
    client: openai.OpenAI, server: RunningServer
) -> None:
    free = client.chat.completions.create(
        model="default", messages=USER, max_tokens=30, temperature=0
    )
    stop = (free.choices[0].message.content or "").strip().split()[1]
    sdk = anthropic.Anthropic(api_key="unused", base_url=server.base_url, max_retries=0)
    ask: dict[str, Any] = {
        "model": "default",
        "max_tokens": 30,
        "messages": USER,
        "stop_sequences": [stop],
        "extra_body": {"temperature": 0},  # this SDK version takes no temperature
    }
    message = sdk.messages.create(**ask)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", stop)
    with sdk.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    assert (streamed.stop_reason, streamed.stop_sequence) == ("stop_sequence", stop)
    ended = sdk.messages.create(**{**ask, "stop_sequences": ["no such text"]})
    assert ended.stop_reason in ("end_turn", "max_tokens")
    assert ended.stop_sequence is None


def test_paraphrases_embed_closer_than_unrelated_sentences(client: openai.OpenAI) -> None:
    result = client.embeddings.create(
        model="local/minilm",
        input=[
            "The cat sat on the mat.",
            "A cat was sitting on the rug.",
            "Quarterly revenue grew by eight percent.",
        ],
    )
    a, b, c = (item.embedding for item in result.data)
    assert len(a) == 384
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-4)

    def cosine(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cosine(a, b) > cosine(a, c) + 0.3
    assert result.usage.prompt_tokens > 0


def test_embedding_formats_agree(server: RunningServer) -> None:
    body = {"model": "local/minilm", "input": "hello"}
    floats = httpx.post(f"{server.base_url}/v1/embeddings", json=body).json()
    encoded = httpx.post(
        f"{server.base_url}/v1/embeddings", json={**body, "encoding_format": "base64"}
    ).json()
    import base64
    import struct

    raw = base64.b64decode(encoded["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert decoded == pytest.approx(floats["data"][0]["embedding"], abs=1e-6)


def test_unsupported_dimensions_are_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="local/minilm", input="x", dimensions=128)
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == "dimensions"  # type: ignore[attr-defined]
    ok = client.embeddings.create(model="local/minilm", input="x", dimensions=384)
    assert len(ok.data[0].embedding) == 384


def test_models_list_names_both_local_models(client: openai.OpenAI) -> None:
    ids = {model.id for model in client.models.list()}
    assert {"local/smollm2", "local/minilm", "default"} <= ids
    assert client.models.retrieve("local/smollm2").id == "local/smollm2"


def test_prompt_over_the_context_window_is_rejected(client: openai.OpenAI) -> None:
    long_prompt = "word " * 3000
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": long_prompt}]
        )
    assert caught.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as too_many:
        client.chat.completions.create(model="default", messages=USER, max_tokens=5000)
    assert too_many.value.code == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError) as streamed:
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": long_prompt}], stream=True
        )
    assert streamed.value.code == "context_length_exceeded"


def test_errors_reach_the_sdk_with_status_and_code(
    client: openai.OpenAI, server: RunningServer
) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-nope", messages=USER)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as invalid:
        client.chat.completions.create(model="default", messages=[])
    assert invalid.value.param == "messages"  # type: ignore[attr-defined]
    with pytest.raises(openai.APIStatusError) as too_large:
        client.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x" * (11 * 1024 * 1024)}]
        )
    assert too_large.value.status_code == 413
    with pytest.raises(openai.APIStatusError) as media:
        client.chat.completions.create(
            model="default", messages=USER, extra_headers={"content-type": "text/plain"}
        )
    assert media.value.status_code == 415
    malformed = httpx.post(
        f"{server.base_url}/v1/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "invalid_json"
    assert malformed.headers["x-request-id"]


def test_probes_report_models_and_storage(server: RunningServer) -> None:
    assert httpx.get(f"{server.base_url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{server.base_url}/readyz").json()
    assert ready["status"] == "ready"
    names = {check["name"] for check in ready["checks"]}
    assert {"model:local/smollm2", "model:local/minilm", "storage:data_dir"} <= names


def test_concurrent_requests_all_complete(server: RunningServer) -> None:
    import concurrent.futures

    client = server.openai()

    def ask(seed: int) -> str:
        reply = client.chat.completions.create(
            model="default", messages=USER, max_tokens=8, seed=seed
        )
        return reply.choices[0].message.content or ""

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert all(answers)
