"""Per-user export and erasure through the admin API and the CLI: afterwards a
scan of every store (SQL tables, the outbox, cache entries, RAG files, the
access log) finds neither the user's id, nor its pseudonym, nor their content."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from pydantic import SecretStr

from gatehouse.cli.main import main
from gatehouse.core.pseudonyms import Pseudonyms
from gatehouse.gateway.cache import ExactCache, MemoryStore
from gatehouse.observability import AccessLog

from .governed import MASTER, Governed, governed_app
from .store_scan import rows_at, table_rows

USER = "zoe.private@example.org"
OTHER = "max.public"
CONTENT = "my diagnosis code is QX-4471-ZETA"
SECRET = "pseudonym-secret-for-tests"
RAG_SCOPES = ["rag:read", "rag:write", "chat", "embeddings"]
JWT_SECRET = "jwt-secret-for-privacy-tests-0123456789"


@pytest.fixture
def access_log(tmp_path: Path) -> Iterator[AccessLog]:
    with (tmp_path / "server.log").open("w") as stream:
        # As create_app builds it from privacy.pseudonym_secret.
        logged = AccessLog(stream, format="json", pseudonyms=Pseudonyms(SecretStr(SECRET)))
        yield logged
        logged.close()


@pytest.fixture
async def gov(tmp_path: Path, access_log: AccessLog) -> AsyncIterator[Governed]:
    async for governed in governed_app(
        tmp_path,
        access_log=access_log,
        cache={"enabled": True},
        privacy={"pseudonym_secret": SECRET},
        auth={"master_key": MASTER, "jwt": {"secret": JWT_SECRET}},
    ):
        yield governed


def _log_text(tmp_path: Path, access_log: AccessLog) -> str:
    access_log.close()  # writes every queued line; the next request starts it again
    return (tmp_path / "server.log").read_text()


async def _use_everything(gov: Governed) -> tuple[str, str]:
    """The user's key asks, streams, stores a response and builds a collection;
    another user's key asks once naming the user as its end user, and once for itself."""
    key = await gov.new_key(name="zoe", user=USER, team="clinic", scopes=RAG_SCOPES)
    other = await gov.new_key(name="max", user=OTHER, team="clinic")
    sdk = gov.sdk(key)
    messages = [{"role": "user", "content": CONTENT}]
    await sdk.chat.completions.create(model="default", messages=messages, temperature=0)
    stream = await sdk.chat.completions.create(
        model="default", messages=messages, temperature=0, seed=1, stream=True
    )
    async for _ in stream:
        pass
    stored = await gov.http.post(
        "/v1/responses",
        json={"model": "default", "input": CONTENT, "store": True},
        headers={"authorization": f"Bearer {key}"},
    )
    assert stored.status_code == 200, stored.text
    auth = {"authorization": f"Bearer {key}"}
    created = await gov.http.post(
        "/v1/rag/collections",
        json={"name": "zoe-notes", "embedding_model": "test/embed", "owner": "key"},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    docs = {"documents": [{"id": "n1", "text": f"Note: {CONTENT}."}]}
    added = await gov.http.post("/v1/rag/collections/zoe-notes/documents", json=docs, headers=auth)
    assert added.status_code == 200, added.text
    other_sdk = gov.sdk(other)
    await other_sdk.chat.completions.create(
        model="default", messages=messages, temperature=0, seed=7, user=USER
    )
    await other_sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "weather?"}], temperature=0
    )
    # The same user signed in through single sign-on: a JWT whose subject is the user.
    token = jwt.encode({"sub": USER, "exp": time.time() + 600}, JWT_SECRET, algorithm="HS256")
    await gov.sdk(token).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "from sso"}]
    )
    await gov.governance.shipper.drain()
    return key, other


async def _sql_rows(gov: Governed) -> list[str]:
    return await table_rows(gov.governance.database)


def _outbox_rows(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "outbox.db") as conn:
        return [body for (body,) in conn.execute("SELECT body FROM outbox")]


def _cache_values(gov: Governed) -> list[bytes]:
    assert gov.gateway is not None
    [cache] = [s for s in gov.gateway.stages if isinstance(s, ExactCache)]
    assert isinstance(cache.store, MemoryStore)
    return [value for _, value in cache.store._entries.values()]


def _files(root: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for p in root.rglob("*") if p.is_file()]


def _traces(
    gov: Governed, tmp_path: Path, sql: list[str], access_log: AccessLog
) -> dict[str, list[str]]:
    """Where the user's id, pseudonym or content still appear, store by store
    (in the server log: the id or content)."""
    pseudonym = str(Pseudonyms(SecretStr(SECRET)).user(USER))
    needles = [USER, pseudonym, CONTENT]
    found: dict[str, list[str]] = {}

    def check(store: str, text: str, needles: list[str] = needles) -> None:
        for needle in needles:
            if needle in text:
                found.setdefault(store, []).append(needle)

    for row in sql:
        check("sql", row)
    for body in _outbox_rows(tmp_path):
        check("outbox", body)
    for value in _cache_values(gov):
        check("cache", value.decode("utf-8", "replace"))
    for path, data in _files(tmp_path / "rag"):
        check(f"rag:{path.name}", data.decode("utf-8", "replace"))
    # Log lines are never rewritten: they must hold the pseudonym, never the id.
    check("log", _log_text(tmp_path, access_log), [USER, CONTENT])
    return found


async def test_export_lists_the_users_data_and_is_audited(gov: Governed) -> None:
    await _use_everything(gov)
    response = await gov.admin("GET", f"/admin/privacy/users/{USER}")
    assert response.status_code == 200, response.text
    data = response.json()
    # The key's two chat calls, its Responses call and its RAG ingestion, and the
    # JWT's call; not the other key's call that named the user as its end user
    # (the ledger records whose key called, not the end user).
    key_id = data["keys"][0]["id"]
    pseudonym = Pseudonyms(SecretStr(SECRET)).user(USER)
    calls = sorted((e["principal"], e["tag"] or "") for e in data["usage_events"])
    assert calls == sorted(
        [(f"key:{key_id}", "")] * 2
        + [(f"key:{key_id}", "responses"), (f"key:{key_id}", "rag.ingest")]
        + [(f"jwt:{pseudonym}", "")]
    )
    assert len(data["responses"]) == 1
    assert CONTENT in str(data["responses"][0]["input_items"])
    assert data["rag_collections"] == ["zoe-notes"]
    assert data["keys"][0]["user"] == USER
    entries = (await gov.admin("GET", "/admin/audit")).json()["entries"]
    assert entries[0]["action"] == "privacy.export"
    assert USER not in str(entries[0])


async def test_delete_leaves_no_trace_in_any_store(
    gov: Governed, tmp_path: Path, access_log: AccessLog
) -> None:
    key, other = await _use_everything(gov)
    pseudonym = str(Pseudonyms(SecretStr(SECRET)).user(USER))
    before = _traces(gov, tmp_path, await _sql_rows(gov), access_log)
    # What the scan looks for is there to begin with: the id in keys and stored
    # responses, its pseudonym (never the id) in the ledger and the access log,
    # the content in responses, cache entries and the RAG index.
    assert set(before) == {"sql", "cache", "rag:chunks.db"}
    assert set(before["sql"]) == {USER, pseudonym, CONTENT}
    assert "log" not in before
    assert pseudonym in _log_text(tmp_path, access_log)
    spend_before = (await gov.admin("GET", "/admin/spend?group_by=team")).json()["rows"]

    response = await gov.admin("DELETE", f"/admin/privacy/users/{USER}")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["deleted"]["responses"] == 1
    assert report["deleted"]["keys"] == 1
    assert report["deleted"]["collections"] == ["zoe-notes"]
    assert report["deleted"]["cache_entries"] >= 2
    assert report["not_reached"] == ["in-memory response caches of other replicas"]

    assert _traces(gov, tmp_path, await _sql_rows(gov), access_log) == {}
    # The team's spend is unchanged: the user's events are counted in anonymous rollups.
    spend_after = (await gov.admin("GET", "/admin/spend?group_by=team")).json()["rows"]
    assert spend_after == spend_before
    # The user's key no longer works; the other user's still does.
    refused = await gov.http.post(
        "/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
    )
    assert refused.status_code == 401
    await gov.sdk(other).chat.completions.create(
        model="default", messages=[{"role": "user", "content": "still here"}]
    )
    # The compliance entry names the user only by a digest.
    entries = (await gov.admin("GET", "/admin/audit")).json()["entries"]
    erasure = next(e for e in entries if e["action"] == "privacy.delete")
    assert erasure["target"] == f"privacy:{report['user_tag']}"
    assert erasure["after"]["events"] == report["deleted"]["events"]


async def test_privacy_routes_need_the_admin_scope(gov: Governed) -> None:
    key = await gov.new_key(name="app", team="clinic", scopes=["chat", "rag:read", "rag:write"])
    for method in ("GET", "DELETE"):
        response = await gov.http.request(
            method, f"/admin/privacy/users/{USER}", headers={"authorization": f"Bearer {key}"}
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert (await gov.http.get(f"/admin/privacy/users/{USER}")).status_code == 401


def test_pseudonyms_never_print_their_secret() -> None:
    pseudonyms = Pseudonyms(SecretStr(SECRET))
    assert SECRET not in repr(pseudonyms)
    assert pseudonyms.user(USER) == pseudonyms.user(USER) != Pseudonyms(SecretStr("x")).user(USER)
    assert str(pseudonyms.user(USER)).startswith("u_")
    assert pseudonyms.principal(f"jwt:{USER}") == f"jwt:{pseudonyms.user(USER)}"
    assert pseudonyms.principal("key:0123") == "key:0123"
    assert Pseudonyms(None).user(USER) == USER


def test_the_cli_exports_and_deletes_with_no_server_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings: dict[str, Any] = {
        "cache": {"enabled": True},
        "privacy": {"pseudonym_secret": SECRET},
        "auth": {"master_key": MASTER, "jwt": {"secret": JWT_SECRET}},
    }

    async def populate() -> None:
        async for gov in governed_app(tmp_path, **settings):
            await _use_everything(gov)

    asyncio.run(populate())
    config = tmp_path / "gatehouse.yaml"
    config.write_text(yaml.safe_dump({**settings, "data_dir": str(tmp_path)}))
    argv = ["--config", str(config), "privacy"]

    assert main([*argv, "export", "--user", USER]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert len(exported["usage_events"]) == 5
    assert exported["rag_collections"] == ["zoe-notes"]

    assert main([*argv, "delete", "--user", USER, "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["deleted"]["events"] == 5
    assert report["deleted"]["responses"] == 1
    assert report["deleted"]["collections"] == ["zoe-notes"]
    # A separate process cannot reach a server's in-memory cache, and says so.
    assert len(report["not_reached"]) == 1
    assert "cache.backend: memory" in report["not_reached"][0]

    pseudonym = str(Pseudonyms(SecretStr(SECRET)).user(USER))
    rows = asyncio.run(rows_at(None, tmp_path))
    files = [data for _, data in _files(tmp_path / "rag")]
    for needle in (USER, pseudonym, CONTENT):
        assert not any(needle in row for row in rows), needle
        assert not any(needle.encode() in data for data in files), needle
