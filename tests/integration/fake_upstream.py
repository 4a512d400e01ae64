"""A fake upstream provider: a real HTTP server that can be told to misbehave.

It speaks the OpenAI (``/v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses``
with its typed SSE events), Anthropic
(``/v1/messages``, ``/v1/messages/count_tokens``) and Gemini
(``/v1beta/models/{model}:generateContent``, ``:streamGenerateContent`` and
``:countTokens``) shapes, and the rerank endpoints of Cohere (``/v2/rerank``),
Jina (``/v1/rerank``) and vLLM (``/rerank``). It answers by echoing the last
user message word by word, and follows a script of behaviours: the next N requests
can be delayed, answered with a status (429 with ``Retry-After``, 500, ...),
reset, stalled before the first token, or have their stream cut midway; an OpenAI,
Anthropic or Gemini chat request can also be answered with a body that is not
JSON (``malformed``: half of it, or a stream's first event cut in half), one far
larger than usual (``oversized``, ``oversized_bytes`` of text, in one event or in
pieces of ``piece_chars``) or an HTML page with status 200 (``wrong_type``), as a
broken proxy in front of a provider would; a whole answer can be ``cut`` after
half its promised length; and an
OpenAI chat, Responses or Gemini request can be answered with a call of its first tool
(``tool_call``, arguments ``{"text": <the last user message>}``), with
reasoning and a signature first (``thinking``); a failure rate applies a
behaviour at random. Every request is recorded, and a
stream whose client went away is counted as cancelled.

Runs on its own event loop in a background thread, so tests in the same
process can start it and gatehouse subprocesses can reach it over real HTTP.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from aiohttp import web

from .app_thread import AppThread, loopback_port

Kind = Literal[
    "ok",
    "status",
    "reset",
    "stall",
    "cut",
    "delay",
    "tool_call",
    "malformed",
    "oversized",
    "wrong_type",
]


@dataclass
class Behaviour:
    kind: Kind = "ok"
    status: int = 500
    retry_after: float | None = None
    delay: float = 0.0  # before answering (all kinds)
    chunk_delay: float = 0.0  # between streamed chunks
    cut_after: int = 2  # chunks sent before a cut
    probability: float = 1.0  # chance that this behaviour applies; otherwise a plain answer
    error_body: dict[str, Any] | None = None
    piece_chars: int = 0  # chat streams: pieces of this many characters, not a word a chunk
    # OpenAI chat and Gemini answers reason first: reasoning_content and a signed
    # thinking block (OpenAI chat, as LiteLLM sends them), a reasoning item with
    # ``encrypted_content`` ``enc-responses-<request number>`` (Responses), or a thought part and a
    # thoughtSignature (Gemini); signatures are ``sig-<dialect>-<request number>``.
    thinking: bool = False
    oversized_bytes: int = 8 * 1024 * 1024  # the answer's text, for ``oversized``


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def model(self) -> str:
        if "model" in self.body:
            return str(self.body["model"])
        return self.path.rsplit("/", 1)[-1].split(":", 1)[0]  # Gemini names it in the path


@dataclass
class FakeUpstream:
    """Start with :meth:`start`; ``base_url`` is then ``http://127.0.0.1:PORT``."""

    script: deque[Behaviour] = field(default_factory=deque)
    failure_rate: float = 0.0
    failure: Behaviour = field(default_factory=lambda: Behaviour("status", status=500))
    default: Behaviour = field(default_factory=Behaviour)
    by_model: dict[str, Behaviour] = field(default_factory=dict)
    # What an OpenAI-style chat answer reports as its prompt tokens, whatever the prompt.
    prompt_tokens: int = 5
    # Fields merged over each dialect's usage ("openai", "anthropic", "gemini"),
    # such as cache and reasoning counts in that dialect's own names.
    usage_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    cancelled: int = 0
    completed_streams: int = 0
    port: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    _server: AppThread = field(default_factory=lambda: AppThread("fake-upstream"))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- control ---------------------------------------------------------------

    def then(self, *behaviours: Behaviour) -> FakeUpstream:
        """Queue behaviours for the next requests, in order."""
        self.script.extend(behaviours)
        return self

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        self.failure_rate = 0.0
        self.default = Behaviour()
        self.by_model.clear()
        self.prompt_tokens = 5
        self.usage_overrides.clear()
        self.cancelled = 0
        self.completed_streams = 0

    def count(self, path_part: str = "") -> int:
        return sum(1 for r in self.requests if path_part in r.path)

    def models(self) -> list[str]:
        """The upstream model each recorded request asked for, in order."""
        return [r.model for r in self.requests]

    def _next(self, model: str) -> Behaviour:
        if self.script:
            return self.script.popleft()
        if model in self.by_model:
            return self.by_model[model]
        if self.failure_rate and self.rng.random() < self.failure_rate:
            return self.failure
        return self.default

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeUpstream:
        self.port = loopback_port()
        self._server.start(self._app, self.port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._openai_chat)
        app.router.add_post("/v1/embeddings", self._openai_embeddings)
        app.router.add_post("/v1/responses", self._openai_responses)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_post("/v1/messages/count_tokens", self._anthropic_count)
        app.router.add_post("/v1beta/models/{call}", self._gemini)
        app.router.add_post("/v2/rerank", self._rerank)  # Cohere
        app.router.add_post("/v1/rerank", self._rerank)  # Jina
        app.router.add_post("/rerank", self._rerank)  # vLLM
        return app

    # -- shared behaviour ---------------------------------------------------------

    async def _begin(self, request: web.Request) -> tuple[dict[str, Any], Behaviour]:
        body = orjson.loads(await request.read())
        recorded = Recorded(request.path, body, dict(request.headers))
        self.requests.append(recorded)
        behaviour = self._next(recorded.model)
        if behaviour.probability < 1.0 and self.rng.random() >= behaviour.probability:
            behaviour = Behaviour()
        if behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        if behaviour.kind == "reset":
            assert request.transport is not None
            request.transport.abort()
            raise ConnectionResetError("fake upstream reset the connection")
        if behaviour.kind == "stall" and not body.get("stream"):
            await asyncio.sleep(3600)  # a whole answer that never comes
        return body, behaviour

    def _status(self, behaviour: Behaviour, dialect: str) -> web.Response:
        headers = {"x-request-id": f"up-{len(self.requests)}", "request-id": "up-anthropic"}
        if behaviour.retry_after is not None:
            headers["retry-after"] = str(behaviour.retry_after)
        if behaviour.error_body is not None:
            body = behaviour.error_body
        elif dialect == "anthropic":
            body = {"type": "error", "error": {"type": "api_error", "message": "fake failure"}}
        elif dialect == "gemini":
            body = {
                "error": {
                    "code": behaviour.status,
                    "message": "fake failure",
                    "status": "UNAVAILABLE",
                }
            }
        else:
            body = {
                "error": {
                    "message": "fake failure",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        return web.json_response(body, status=behaviour.status, headers=headers)

    async def _stream(
        self, request: web.Request, behaviour: Behaviour, events: list[bytes]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        if behaviour.kind == "stall":
            await asyncio.sleep(3600)
        try:
            for index, event in enumerate(events):
                if behaviour.kind == "cut" and index == behaviour.cut_after:
                    assert request.transport is not None
                    request.transport.abort()
                    return response
                await response.write(event)
                if behaviour.chunk_delay:
                    await asyncio.sleep(behaviour.chunk_delay)
        except (ConnectionResetError, asyncio.CancelledError):
            self.cancelled += 1
            raise
        self.completed_streams += 1
        await response.write_eof()
        return response

    # -- OpenAI --------------------------------------------------------------------

    async def _openai_responses(self, request: web.Request) -> web.StreamResponse:
        """The Responses API: an echo message, or a call of the first tool (``tool_call``)."""
        body, behaviour = await self._begin(request)
        if behaviour.kind == "status":
            return self._status(behaviour, "openai")
        given = body.get("input", "")
        named = [i["id"] for i in given if "id" in i] if isinstance(given, list) else []
        if body.get("store") is False and named:
            # As OpenAI's: an item id is looked up, and items are not stored.
            message = (
                f"Item with id '{named[0]}' not found. Items are not persisted when "
                "`store` is set to false."
            )
            error = {"message": message, "type": "invalid_request_error", "param": "input"}
            return web.json_response({"error": {**error, "code": None}}, status=404)
        words = _reply_words(_responses_messages(given))
        n = len(self.requests)
        item: dict[str, Any]
        if behaviour.kind == "tool_call":
            text = orjson.dumps({"text": " ".join(words[1:])}).decode()
            item = {
                "type": "function_call",
                "id": f"fc_fake_{n}",
                "call_id": f"call_fake_{n}",
                "name": body["tools"][0]["name"],
                "arguments": text,
                "status": "completed",
            }
        else:
            text = " ".join(words)
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            item = {
                "type": "message",
                "id": f"msg_fake_{n}",
                "role": "assistant",
                "status": "completed",
                "content": [part],
            }
        usage = {
            "input_tokens": self.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": len(words),
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.prompt_tokens + len(words),
            **self.usage_overrides.get("responses", {}),
        }
        response = {
            "id": f"resp_fake_{n}",
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "model": body.get("model", "fake"),
            "output": [],
            "usage": None,
            "store": body.get("store", True),
        }
        output = [item]
        if behaviour.thinking:  # a reasoning item first, its state the upstream's own
            reasoning = {"type": "reasoning", "id": f"rs_fake_{n}", "summary": []}
            output.insert(0, {**reasoning, "encrypted_content": f"enc-responses-{n}"})
        done = {**response, "status": "completed", "output": output, "usage": usage}
        emptied = {"arguments": ""} if item["type"] == "function_call" else {"content": []}
        opened = {**item, "status": "in_progress", **emptied}
        if not body.get("stream"):
            return web.json_response(done)
        kinds: list[dict[str, Any]] = [
            {"type": "response.created", "response": response},
            {"type": "response.in_progress", "response": response},
            {"type": "response.output_item.added", "output_index": 0, "item": opened},
        ]
        at = {"item_id": item["id"], "output_index": 0}
        if item["type"] == "function_call":
            half = len(text) // 2
            kinds += [
                {"type": "response.function_call_arguments.delta", **at, "delta": piece}
                for piece in (text[:half], text[half:])
            ]
            kinds.append({"type": "response.function_call_arguments.done", **at, "arguments": text})
        else:
            empty = {"type": "output_text", "text": "", "annotations": []}
            at["content_index"] = 0
            kinds.append({"type": "response.content_part.added", **at, "part": empty})
            kinds += [
                {"type": "response.output_text.delta", **at, "delta": (" " if i else "") + w}
                for i, w in enumerate(words)
            ]
            kinds.append({"type": "response.output_text.done", **at, "text": text})
            kinds.append({"type": "response.content_part.done", **at, "part": part})
        kinds.append({"type": "response.output_item.done", "output_index": 0, "item": item})
        kinds.append({"type": "response.completed", "response": done})
        events = [
            b"event: %s\ndata: %s\n\n"
            % (event["type"].encode(), orjson.dumps({**event, "sequence_number": number}))
            for number, event in enumerate(kinds)
        ]
        return await self._stream(request, behaviour, events)

    async def _openai_chat(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._begin(request)
        if behaviour.kind == "status":
            return self._status(behaviour, "openai")
        if behaviour.kind == "wrong_type":
            return _error_page()
        words = _oversize(_reply_words(body.get("messages", [])), behaviour)
        model = body.get("model", "fake")
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": self.prompt_tokens + len(words),
            **self.usage_overrides.get("openai", {}),
        }
        if behaviour.kind == "tool_call":
            return await self._openai_tool_call(request, body, behaviour, usage)
        if not body.get("stream"):
            answer = {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {
                            "role": "assistant",
                            "content": " ".join(words),
                            **self._reasoning(behaviour, "openai"),
                        },
                    }
                ],
                "usage": usage,
            }
            headers = {"x-request-id": f"up-{len(self.requests)}"}
            return await self._whole(request, behaviour, answer, headers)

        def chunk(
            delta: dict[str, Any], finish: str | None = None, use: dict[str, Any] | None = None
        ) -> bytes:
            choices = [] if use else [{"index": 0, "delta": delta, "finish_reason": finish}]
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": choices,
            }
            if use:
                payload["usage"] = use
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({k: v}) for k, v in self._reasoning(behaviour, "openai").items()]
        events += [chunk({"content": piece}) for piece in _pieces(words, behaviour)]
        events.append(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append(chunk({}, use=usage))
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, behaviour, _malformed(events, behaviour))

    async def _whole(
        self,
        request: web.Request,
        behaviour: Behaviour,
        answer: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """A whole JSON answer, or half of it (``malformed``, ``cut``); any dialect."""
        if behaviour.kind in ("malformed", "cut"):
            return await self._broken_json(request, behaviour, orjson.dumps(answer))
        return web.json_response(answer, headers=headers)

    async def _broken_json(
        self, request: web.Request, behaviour: Behaviour, whole: bytes
    ) -> web.StreamResponse:
        """Half of a JSON answer: said to be all of it (``malformed``), or its
        connection dropped after the half when the headers promised the whole (``cut``)."""
        half = whole[: len(whole) // 2]
        size = len(whole) if behaviour.kind == "cut" else len(half)
        response = web.StreamResponse(
            headers={"content-type": "application/json", "content-length": str(size)}
        )
        await response.prepare(request)
        await response.write(half)
        if behaviour.kind == "cut":
            assert request.transport is not None
            request.transport.abort()
            return response
        await response.write_eof()
        return response

    async def _openai_tool_call(
        self,
        request: web.Request,
        body: dict[str, Any],
        behaviour: Behaviour,
        usage: dict[str, Any],
    ) -> web.StreamResponse:
        """A call of the request's first tool, whole or streamed (arguments in two pieces)."""
        name = body["tools"][0]["function"]["name"]
        text = " ".join(_reply_words(body.get("messages", []))[1:])
        arguments = orjson.dumps({"text": text}).decode()
        call_id = f"call_fake_{len(self.requests)}"
        model = body.get("model", "fake")
        if not body.get("stream"):
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [call],
                **self._reasoning(behaviour, "openai"),
            }
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "tool_calls", "message": message}],
                    "usage": usage,
                }
            )

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + orjson.dumps(payload) + b"\n\n"

        half = len(arguments) // 2
        first = {"index": 0, "id": call_id, "type": "function"}
        events = [
            chunk({"role": "assistant", "content": None}),
            *[chunk({k: v}) for k, v in self._reasoning(behaviour, "openai").items()],
            chunk({"tool_calls": [{**first, "function": {"name": name, "arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[:half]}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[half:]}}]}),
            chunk({}, "tool_calls"),
        ]
        if (body.get("stream_options") or {}).get("include_usage"):
            payload = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0}
            use = {**payload, "model": model, "choices": [], "usage": usage}
            events.append(b"data: " + orjson.dumps(use) + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return await self._stream(request, behaviour, events)

    def _reasoning(self, behaviour: Behaviour, dialect: str) -> dict[str, Any]:
        if not behaviour.thinking:
            return {}
        text = f"Thinking it over ({len(self.requests)})."
        block = {"type": "thinking", "thinking": text, "signature": self.signature(dialect)}
        return {"reasoning_content": text, "thinking_blocks": [block]}

    def signature(self, dialect: str, request: int | None = None) -> str:
        """The signature a ``thinking`` answer to request number ``request`` carries."""
        return f"sig-{dialect}-{len(self.requests) if request is None else request}"

    async def _rerank(self, request: web.Request) -> web.Response:
        """Cohere (``/v2/rerank``), Jina (``/v1/rerank``) and vLLM (``/rerank``): each
        document scored by the share of the query's words it contains."""
        body, behaviour = await self._begin(request)
        if behaviour.kind == "status":
            return self._status(behaviour, "openai")
        query = set(str(body["query"]).lower().split())
        documents = [str(d) for d in body["documents"]]
        scores = [len(query & set(d.lower().split())) / max(len(query), 1) for d in documents]
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))
        order = order[: body.get("top_n") or len(order)]
        results: list[dict[str, Any]] = [{"index": i, "relevance_score": scores[i]} for i in order]
        words = sum(len(d.split()) + len(query) for d in documents)
        if request.path == "/v2/rerank":
            answer: dict[str, Any] = {
                "id": f"rr-{len(self.requests)}",
                "results": results,
                "meta": {"billed_units": {"search_units": 1}},
            }
        else:
            for result in results:
                result["document"] = {"text": documents[result["index"]]}
            answer = {
                "id": f"rr-{len(self.requests)}",
                "model": body["model"],
                "usage": {"total_tokens": words, "prompt_tokens": words},
                "results": results,
            }
        return web.json_response(answer)

    async def _openai_embeddings(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._begin(request)
        if behaviour.kind == "status":
            return self._status(behaviour, "openai")
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(str(x))), 1.0]}
            for i, x in enumerate(inputs)
        ]
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    # -- Anthropic -------------------------------------------------------------------

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._begin(request)
        if behaviour.kind == "status":
            return self._status(behaviour, "anthropic")
        if behaviour.kind == "wrong_type":
            return _error_page()
        words = _oversize(_reply_words(body.get("messages", [])), behaviour)
        text = " ".join(words)
        usage = {
            "input_tokens": 7,
            "output_tokens": len(words),
            "cache_read_input_tokens": 2,
            "cache_creation_input_tokens": 0,
            **self.usage_overrides.get("anthropic", {}),
        }
        if not body.get("stream"):
            answer = {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage,
            }
            return await self._whole(request, behaviour, answer, {"request-id": "req_fake"})

        def event(name: str, data: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"

        events = [
            event(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_fake",
                        "type": "message",
                        "role": "assistant",
                        "model": body["model"],
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {**usage, "output_tokens": 1},
                    },
                },
            ),
            event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
        ]
        events += [
            event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": piece},
                },
            )
            for piece in _pieces(words, behaviour)
        ]
        events += [
            event("content_block_stop", {"type": "content_block_stop", "index": 0}),
            event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": len(words)},
                },
            ),
            event("message_stop", {"type": "message_stop"}),
        ]
        return await self._stream(request, behaviour, _malformed(events, behaviour))

    # -- Gemini ------------------------------------------------------------------------

    async def _anthropic_count(self, request: web.Request) -> web.Response:
        """A word a token; like Anthropic's, it refuses what a count does not take."""
        body, behaviour = await self._begin(request)
        if behaviour.kind == "status":
            return self._status(behaviour, "anthropic")
        extra = set(body) - {"model", "messages", "system", "tools", "tool_choice", "thinking"}
        if extra:
            behaviour = Behaviour("status", status=400)
            behaviour.error_body = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": f"{sorted(extra)}"},
            }
            return self._status(behaviour, "anthropic")
        texts = [str(body.get("system", ""))]
        for message in body.get("messages", []):
            content = message.get("content", "")
            blocks = content if isinstance(content, list) else [{"text": content}]
            texts.extend(str(block.get("text", "")) for block in blocks)
        return web.json_response({"input_tokens": sum(len(t.split()) for t in texts)})

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        body, behaviour = await self._begin(request)
        if behaviour.kind == "status":
            return self._status(behaviour, "gemini")
        if request.match_info["call"].endswith(":countTokens"):
            whole = body.get("generateContentRequest", body)
            instruction = whole.get("systemInstruction", {"parts": []})
            parts = [p for c in whole.get("contents", []) for p in c.get("parts", [])]
            parts += instruction["parts"]
            words = sum(len(str(p.get("text", "")).split()) for p in parts)
            return web.json_response({"totalTokens": words})
        if behaviour.kind == "wrong_type":
            return _error_page()
        contents = body.get("contents", [])
        last = contents[-1]["parts"][0].get("text", "") if contents else ""
        words = _oversize(_echo(last), behaviour)
        usage = {
            "promptTokenCount": 6,
            "candidatesTokenCount": len(words),
            "totalTokenCount": 6 + len(words),
            **self.usage_overrides.get("gemini", {}),
        }

        thought = {"text": f"Thinking it over ({len(self.requests)}).", "thought": True}
        signed = {"thoughtSignature": self.signature("gemini")} if behaviour.thinking else {}

        def response(text: str, finish: str | None, first: bool = True) -> dict[str, Any]:
            parts: list[dict[str, Any]] = [thought] if behaviour.thinking and first else []
            parts.append({"text": text, **(signed if finish else {})})
            if behaviour.kind == "tool_call":
                declaration = body["tools"][0]["functionDeclarations"][0]
                call = {"name": declaration["name"], "args": {"text": " ".join(words[1:])}}
                parts[-1:] = [{"functionCall": call, **signed}]
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
            if finish:
                candidate["finishReason"] = finish
            return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "fake"}

        if request.match_info["call"].endswith(":generateContent"):
            return await self._whole(request, behaviour, response(" ".join(words), "STOP"))
        pieces = _pieces(words, behaviour)
        if behaviour.kind == "tool_call":
            pieces = [""]  # Gemini streams a function call whole, in one event
        events = [
            b"data: "
            + orjson.dumps(response(piece, "STOP" if i == len(pieces) - 1 else None, i == 0))
            + b"\r\n\r\n"
            for i, piece in enumerate(pieces)
        ]
        return await self._stream(request, behaviour, _malformed(events, behaviour))


def _error_page() -> web.Response:
    """A proxy's error page, with status 200 (``wrong_type``)."""
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    return web.Response(text=page, content_type="text/html")


def _oversize(words: list[str], behaviour: Behaviour) -> list[str]:
    """The answer's words, with ``oversized_bytes`` of text after them for ``oversized``."""
    return [*words, "x" * behaviour.oversized_bytes] if behaviour.kind == "oversized" else words


def _pieces(words: list[str], behaviour: Behaviour) -> list[str]:
    """A streamed answer's text pieces: a word each, or ``piece_chars`` characters each."""
    if behaviour.piece_chars:
        text, size = " ".join(words), behaviour.piece_chars
        return [text[i : i + size] for i in range(0, len(text), size)]
    return [(" " if i else "") + w for i, w in enumerate(words)]


def _malformed(events: list[bytes], behaviour: Behaviour) -> list[bytes]:
    """``events``, the first one's JSON broken off in the middle for ``malformed``."""
    if behaviour.kind != "malformed":
        return events
    first = events[0]
    return [first[: len(first) // 2] + b"\n\n", *events[1:]]


def _reply_words(messages: list[dict[str, Any]]) -> list[str]:
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return _echo(str(content or ""))
    return _echo("")


def _responses_messages(given: Any) -> list[dict[str, Any]]:
    """Responses ``input`` as chat-like messages, for :func:`_reply_words`."""
    if isinstance(given, str):
        return [{"role": "user", "content": given}]
    return [
        {
            "role": item.get("role"),
            "content": [{"text": p.get("text", "")} for p in item.get("content") or []]
            if isinstance(item.get("content"), list)
            else item.get("content"),
        }
        for item in given
        if item.get("type", "message") == "message"
    ]


def _echo(text: str) -> list[str]:
    return ["echo:", *text.split()]
