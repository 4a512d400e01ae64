"""What the sync and the async client share: settings and request building."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from gatehouse.client._protocol import Call

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
# The host an in-process app is addressed as; any name would do.
IN_PROCESS_URL = "http://gatehouse.local"
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)


def resolve_base_url(base_url: str | None, in_process: bool) -> str:
    """The server's root URL: the argument, ``GATEHOUSE_BASE_URL`` or the default.

    A trailing ``/v1`` (what OpenAI clients are given) is accepted and dropped,
    since the RAG and admin routes live beside it."""
    if in_process:
        return IN_PROCESS_URL
    url = (base_url or os.environ.get("GATEHOUSE_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
    return url.removesuffix("/v1")


def default_headers(api_key: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
    key = api_key if api_key is not None else os.environ.get("GATEHOUSE_API_KEY")
    out = {"accept": "application/json", "user-agent": "gatehouse-client"}
    if key:
        out["authorization"] = f"Bearer {key}"
    out.update(headers or {})
    return out


def build_request(http: httpx.Client | httpx.AsyncClient, call: Call[Any]) -> httpx.Request:
    if call.body is None:
        return http.build_request(call.method, call.path, params=call.params)
    return http.build_request(
        call.method,
        call.path,
        params=call.params,
        content=orjson.dumps(call.body),
        headers={"content-type": "application/json"},
    )


def stream_request(http: httpx.Client | httpx.AsyncClient, body: Any) -> httpx.Request:
    request = build_request(http, Call("POST", "/v1/chat/completions", lambda _: None, body))
    request.headers["accept"] = "text/event-stream"
    return request
