"""Work a caller causes outside a model call counts against its rate limit:
rendering a stored prompt (chat completions, responses) and counting tokens.
And ``/readyz`` tells its checks to an admin caller only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .governed import MASTER, Governed, governed_app

TEMPLATE = {"name": "hello", "template": "Say hello to {{ who }}.", "variables": {"who": "string"}}
PROMPT = {"id": "hello", "variables": {"who": "Ada"}}


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


async def call(gov: Governed, key: str, method: str, path: str, body: Any = None) -> httpx.Response:
    return await gov.http.request(
        method, path, json=body, headers={"authorization": f"Bearer {key}"}
    )


async def limited_key(gov: Governed, rpm: int) -> str:
    """A red-team key of ``rpm`` requests a minute, once red stored TEMPLATE."""
    scopes = ["chat", "prompts:read", "prompts:write"]
    author = await gov.new_key(team="red", scopes=scopes)
    assert (await call(gov, author, "POST", "/v1/prompts", TEMPLATE)).status_code == 201
    return await gov.new_key(team="red", scopes=scopes, limits={"rpm": rpm})


CHAT = ("/v1/chat/completions", {"model": "test/echo", "messages": [], "prompt": PROMPT})
RESPONSES = ("/v1/responses", {"model": "test/echo", "input": "hi", "prompt": PROMPT})
INPUT_TOKENS = (
    "/v1/responses/input_tokens",
    {"model": "test/echo", "input": "hi", "prompt": PROMPT},
)


@pytest.mark.parametrize(("path", "body"), [CHAT, RESPONSES, INPUT_TOKENS])
async def test_a_third_render_in_the_minute_is_a_429(
    gov: Governed, path: str, body: dict[str, Any]
) -> None:
    key = await limited_key(gov, rpm=2)
    for remaining in ("1", "0"):
        answer = await call(gov, key, "POST", path, body)
        assert answer.status_code == 200, answer.text
        # A rendered call counts once, not once to render and once to call.
        assert answer.headers["x-ratelimit-remaining-requests"] == remaining
    refused = await call(gov, key, "POST", path, body)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert "2 requests per minute" in refused.json()["error"]["message"]
    gov.clock.advance(60)
    assert (await call(gov, key, "POST", path, body)).status_code == 200


async def test_renders_and_calls_share_the_minute(gov: Governed) -> None:
    key = await limited_key(gov, rpm=3)
    assert (await call(gov, key, "POST", *INPUT_TOKENS)).status_code == 200
    plain = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]}
    assert (await call(gov, key, "POST", "/v1/chat/completions", plain)).status_code == 200
    assert (await call(gov, key, "POST", *CHAT)).status_code == 200
    assert (await call(gov, key, "POST", *INPUT_TOKENS)).status_code == 429
    # A refused render leaves nothing to call: the chat route is refused too.
    assert (await call(gov, key, "POST", *CHAT)).status_code == 429


async def test_counting_anthropic_tokens_counts_a_request(gov: Governed) -> None:
    key = await gov.new_key(team="red", scopes=["chat"], limits={"rpm": 1})
    body = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]}
    assert (await call(gov, key, "POST", "/v1/messages/count_tokens", body)).status_code == 200
    refused = await call(gov, key, "POST", "/v1/messages/count_tokens", body)
    assert refused.status_code == 429
    assert refused.json()["type"] == "error"  # Anthropic's shape, like /v1/messages


async def test_readyz_details_need_the_admin_scope(gov: Governed) -> None:
    anonymous = await gov.http.get("/readyz")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ready"}
    team_admin = await gov.new_key(team="red", scopes=["chat", "admin"])
    chat_only = await gov.new_key(scopes=["chat"])
    for key in (team_admin, chat_only, "sk-not-a-key"):
        assert (await call(gov, key, "GET", "/readyz")).json() == {"status": "ready"}
    admin = await gov.new_key(scopes=["admin"])
    for key in (MASTER, admin):
        detailed = (await call(gov, key, "GET", "/readyz")).json()
        assert detailed["status"] == "ready"
        assert "model:test/echo" in {check["name"] for check in detailed["checks"]}
