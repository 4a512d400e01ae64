"""The two reference servers of ``gateway_overhead.py``, each run as its own process.

``upstream``: a trivial OpenAI-compatible server written on raw asyncio +
httptools + uvloop, fast enough that it is never what a proxy in front of it
waits for. It answers every chat completion with the same small body; a
streamed one sends its first chunk at once and the rest ``--stream-gap-ms``
later, so that time to first byte is told apart from time to the last.

``proxy``: the bare pass-through proxy, the practical ceiling for a Python
proxy: a few lines of raw ASGI on uvicorn (uvloop + httptools) with a pooled
aiohttp client, no parsing, no features.

    python bench/overhead_servers.py upstream --port 9001
    python bench/overhead_servers.py proxy --port 9002 --upstream http://127.0.0.1:9001
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import orjson

COMPLETION = orjson.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-upstream",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
    }
)


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-upstream",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
        if delta or finish
        else [],
    }
    if usage is not None:
        body["usage"] = usage
    return b"data: " + orjson.dumps(body) + b"\n\n"


FIRST_EVENT = _chunk({"role": "assistant", "content": "Hello"})
REST_EVENTS = (
    _chunk({"content": "! How can I help you today?"})
    + _chunk({}, finish="stop")
    + _chunk({}, usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21})
    + b"data: [DONE]\n\n"
)


def _http_chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


JSON_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(COMPLETION)).encode()
    + b"\r\n\r\n"
)
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


class _UpstreamProtocol(asyncio.Protocol):
    def __init__(self, gap: float) -> None:
        import httptools

        self.gap = gap
        self.parser = httptools.HttpRequestParser(self)
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:
            assert self.transport is not None
            self.transport.close()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        raw, self.body = b"".join(self.body), []
        transport = self.transport
        assert transport is not None
        stream = b'"stream"' in raw and orjson.loads(raw).get("stream") is True
        if not stream:
            transport.write(JSON_HEAD + COMPLETION)
            return
        transport.write(SSE_HEAD + _http_chunk(FIRST_EVENT))

        def finish() -> None:
            if not transport.is_closing():
                transport.write(_http_chunk(REST_EVENTS) + b"0\r\n\r\n")

        asyncio.get_running_loop().call_later(self.gap, finish)


async def _serve_upstream(port: int, gap: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _UpstreamProtocol(gap), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def run_upstream(port: int, gap_ms: float) -> None:
    import uvloop

    uvloop.run(_serve_upstream(port, gap_ms / 1000))


def bare_proxy(upstream: str) -> Any:
    """The bare pass-through proxy as a raw ASGI app."""
    import aiohttp

    session: aiohttp.ClientSession | None = None

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal session
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    connector = aiohttp.TCPConnector(limit=1000, keepalive_timeout=60)
                    session = aiohttp.ClientSession(connector=connector)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    assert session is not None
                    await session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        assert session is not None
        headers = {"content-type": "application/json"}
        async with session.post(upstream + scope["path"], data=body, headers=headers) as response:
            kind = response.headers.get("content-type", "application/json").encode()
            if not kind.startswith(b"text/event-stream"):
                payload = await response.read()
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status,
                        "headers": [
                            (b"content-type", kind),
                            (b"content-length", str(len(payload)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": payload})
                return
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [(b"content-type", kind)],
                }
            )
            async for data in response.content.iter_any():
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    return app


def run_proxy(port: int, upstream: str) -> None:
    import uvicorn

    uvicorn.run(
        bare_proxy(upstream.rstrip("/")),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="server", required=True)
    up = sub.add_parser("upstream")
    up.add_argument("--port", type=int, required=True)
    up.add_argument("--stream-gap-ms", type=float, default=20.0)
    proxy = sub.add_parser("proxy")
    proxy.add_argument("--port", type=int, required=True)
    proxy.add_argument("--upstream", required=True)
    args = parser.parse_args()
    if args.server == "upstream":
        run_upstream(args.port, args.stream_gap_ms)
    else:
        run_proxy(args.port, args.upstream)


if __name__ == "__main__":
    main()
