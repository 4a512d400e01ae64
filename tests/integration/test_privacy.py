"""Per-user erasure against a real server on PostgreSQL with a Redis cache:
afterwards no PostgreSQL table, Redis key or value, file of the data
directory or line of the server's log holds the user's id or content."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import SecretStr
from redis import Redis as RedisClient

from gatehouse.core.pseudonyms import Pseudonyms

from ..services import Redis
from ..unit.store_scan import rows_at
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream

MASTER = "sk-master-privacy-0123456789"
SECRET = "privacy-integration-secret"
USER = "ines.erasable@example.net"
CONTENT = "account number WX-99812-ERASE"
ADMIN = {"authorization": f"Bearer {MASTER}"}


@pytest.fixture
def running(
    upstream: FakeUpstream, redis_server: Redis, postgres_url: str, tmp_path: Path
) -> Iterator[tuple[RunningServer, str]]:
    config = tmp_path / "gatehouse.yaml"
    config.write_text(
        f"""
local: {{chat: {{enabled: false}}, embeddings: {{enabled: false}}}}
models:
  - name: echo
    deployments:
      - {{provider: openai_compat, model: up-echo, base_url: '{upstream.base_url}/v1'}}
cache: {{enabled: true, backend: redis, redis_url: '{redis_server.url}'}}
observability: {{access_log: {{format: json}}}}
"""
    )
    env = {
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_STORE__DATABASE_URL": postgres_url,
        "GATEHOUSE_PRIVACY__PSEUDONYM_SECRET": SECRET,
    }
    server = start_server(tmp_path / "data", env=env, config=config)
    try:
        yield server, postgres_url
    finally:
        stop_server(server)


def _tables(url: str) -> list[str]:
    return asyncio.run(rows_at(url, Path(".")))


def _redis(url: str) -> list[str]:
    client = RedisClient.from_url(url)
    found = []
    for key in client.scan_iter(count=1000):
        found.append(key.decode("utf-8", "replace"))
        kind = client.type(key)
        if kind == b"string":
            found.append((client.get(key) or b"").decode("utf-8", "replace"))
        elif kind == b"set":
            found += [m.decode("utf-8", "replace") for m in client.smembers(key)]
    client.close()
    return found


def _files(data_dir: Path) -> list[str]:
    found = []
    outbox = data_dir / "outbox.db"
    if outbox.exists():
        with sqlite3.connect(outbox) as conn:
            found += [body for (body,) in conn.execute("SELECT body FROM outbox")]
    for path in data_dir.rglob("*"):
        if path.is_file() and not path.name.startswith("outbox.db"):
            found.append(path.read_bytes().decode("utf-8", "replace"))
    return found


def test_after_erasure_no_store_holds_the_user(
    running: tuple[RunningServer, str], redis_server: Redis, tmp_path: Path
) -> None:
    server, postgres_url = running
    created = httpx.post(
        f"{server.base_url}/admin/keys",
        json={"name": "ines", "user": USER, "team": "bank"},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    other = httpx.post(
        f"{server.base_url}/admin/keys", json={"name": "app", "team": "bank"}, headers=ADMIN
    ).json()["key"]
    sdk = openai.OpenAI(api_key=created.json()["key"], base_url=f"{server.base_url}/v1")
    messages = [{"role": "user", "content": CONTENT}]
    sdk.chat.completions.create(model="echo", messages=messages, temperature=0)  # type: ignore[arg-type]
    for _ in sdk.chat.completions.create(
        model="echo",
        messages=messages,  # type: ignore[arg-type]
        temperature=0,
        seed=3,
        stream=True,
    ):
        pass
    app = openai.OpenAI(api_key=other, base_url=f"{server.base_url}/v1")
    app.chat.completions.create(
        model="echo",
        messages=messages,  # type: ignore[arg-type]
        temperature=0,
        seed=9,
        user=USER,
    )
    pseudonym = str(Pseudonyms(SecretStr(SECRET)).user(USER))
    needles = (USER, pseudonym, CONTENT)

    exported = httpx.get(f"{server.base_url}/admin/privacy/users/{USER}", headers=ADMIN)
    assert exported.status_code == 200, exported.text
    assert len(exported.json()["usage_events"]) == 2
    # The content is cached in Redis (the streamed entry holds it in pieces),
    # the pseudonym is in PostgreSQL.
    assert sum(CONTENT in value for value in _redis(redis_server.url)) == 2
    assert any(pseudonym in row for row in _tables(postgres_url))

    erased = httpx.delete(f"{server.base_url}/admin/privacy/users/{USER}", headers=ADMIN)
    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["deleted"]["events"] == 2
    assert report["deleted"]["cache_entries"] == 3
    assert report["not_reached"] == []

    for store, values in (
        ("postgresql", _tables(postgres_url)),
        ("redis", _redis(redis_server.url)),
        ("data directory", _files(tmp_path / "data")),
    ):
        for needle in needles:
            assert not any(needle in value for value in values), (store, needle)
    stop_server(server)  # the access log is complete once the server has stopped
    log = server.log.read_text()
    assert log.count('"principal":"key:') == 3  # one access-log line per call
    assert USER not in log
    assert CONTENT not in log
