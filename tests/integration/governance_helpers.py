"""Shared set-up for governance tests against real gatehouse processes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from .conftest import RunningServer
from .fake_upstream import FakeUpstream

MASTER = "sk-master-integration-0123456789"
# 2**-7 USD per completion token: costs add up exactly in binary floating point.
OUTPUT_PRICE = 0.0078125
# A second model group on the fake upstream, for write_config's extra (a reload adds it).
SECOND_GROUP = """
  - name: up2
    deployments:
      - provider: openai_compat
        model: second-model
        base_url: '{base}/v1'
"""


def write_config(
    path: Path,
    upstream: FakeUpstream,
    extra: str = "",
    *,
    input_price: float = 0,
    local_chat: bool = False,
) -> Path:
    """A config serving the model group ``up`` on ``upstream`` (and ``local/smollm2``
    when ``local_chat``)."""
    path.write_text(
        f"""
local:
  chat: {{enabled: {str(local_chat).lower()}}}
  embeddings: {{enabled: false}}
aliases: {{}}
models:
  - name: up
    deployments:
      - provider: openai_compat
        model: up-model
        base_url: '{upstream.base_url}/v1'
        input_cost_per_token: {input_price}
        output_cost_per_token: {OUTPUT_PRICE}
{extra}
"""
    )
    return path


def admin(server: RunningServer, method: str, path: str, body: object = None) -> httpx.Response:
    return call(server, MASTER, method, path, body)


def call(
    server: RunningServer, key: str, method: str, path: str, body: object = None
) -> httpx.Response:
    """A JSON request to ``server`` as ``key``."""
    return httpx.request(
        method,
        server.base_url + path,
        json=body,
        headers={"authorization": f"Bearer {key}"},
        timeout=60,
    )


def create_key(server: RunningServer, **body: object) -> str:
    response = admin(server, "POST", "/admin/keys", {"name": "it", **body})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def ledger(server: RunningServer, key: str, count: int = 1) -> list[dict[str, Any]]:
    """The key's ledger events, once shipped from the outbox (every 0.2 s by default)."""
    deadline = time.monotonic() + 10
    while True:
        events = admin(server, "GET", "/admin/ledger?limit=10000").json()["events"]
        mine = [e for e in events if e["key_id"] == key[3:19]]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)
