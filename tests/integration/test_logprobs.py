"""``logprobs`` through the real server from an OpenAI-compatible upstream, via the openai SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream

WORDS = ["Hello", " world"]


def token(word: str) -> dict[str, Any]:
    runner_up = word.upper()
    return {
        "token": word,
        "logprob": -0.25,
        "bytes": list(word.encode()),
        "top_logprobs": [
            {"token": word, "logprob": -0.25, "bytes": list(word.encode())},
            {"token": runner_up, "logprob": -1.5, "bytes": list(runner_up.encode())},
        ],
    }


class LogprobsUpstream(FakeUpstream):
    """Answers chat calls with a log probability for every token, as OpenAI does."""

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._begin(request)
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-lp",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "".join(WORDS)},
                            "finish_reason": "stop",
                            "logprobs": {"content": [token(w) for w in WORDS], "refusal": None},
                        }
                    ],
                    "usage": usage,
                }
            )

        def event(choice: dict[str, Any] | None, use: dict[str, int] | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": "chatcmpl-lp",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": body["model"],
                "choices": [choice] if choice else [],
            }
            if use:
                payload["usage"] = use
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        events = [
            event({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None})
        ]
        events += [
            event(
                {
                    "index": 0,
                    "delta": {"content": word},
                    "finish_reason": None,
                    "logprobs": {"content": [token(word)], "refusal": None},
                }
            )
            for word in WORDS
        ]
        events += [
            event({"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}),
            event(None, use=usage),
            b"data: [DONE]\n\n",
        ]
        return await self._stream(request, behaviour, events)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = LogprobsUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("logprobs")
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
models:
  - name: scored
    deployments:
      - {{provider: openai_compat, model: up-scored, base_url: '{upstream.base_url}/v1'}}
"""
    )
    server = start_server(root / "data", config=config)
    yield server
    stop_server(server)


ASK: Any = [{"role": "user", "content": "hi"}]


def test_logprobs_are_asked_for_and_returned(
    gateway: RunningServer, upstream: FakeUpstream
) -> None:
    reply = gateway.openai().chat.completions.create(
        model="scored", messages=ASK, logprobs=True, top_logprobs=2
    )
    sent = upstream.requests[-1].body
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.content is not None
    assert [t.token for t in logprobs.content] == WORDS
    assert logprobs.content[1].bytes == list(b" world")
    assert [t.token for t in logprobs.content[0].top_logprobs] == ["Hello", "HELLO"]
    assert logprobs.content[0].top_logprobs[1].logprob == -1.5


def test_streamed_logprobs_arrive_with_their_chunks(gateway: RunningServer) -> None:
    stream = gateway.openai().chat.completions.create(
        model="scored", messages=ASK, logprobs=True, top_logprobs=2, stream=True
    )
    tokens = []
    for chunk in stream:
        for choice in chunk.choices:
            if choice.logprobs is not None and choice.logprobs.content:
                assert choice.delta.content == choice.logprobs.content[0].token
                tokens.append(choice.logprobs.content[0])
    assert [t.token for t in tokens] == WORDS
    assert tokens[0].top_logprobs[1].token == "HELLO"
