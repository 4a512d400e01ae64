"""The playground's endpoints run as the session's caller: its scopes, its models,
its collections, its ledger; never an administrator's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from .fakes import EchoChat
from .governed import Governed, governed_app
from .rag_fakes import BagOfWords
from .ui_helpers import ui_login

PRICING = {
    "models": {
        "test/echo": {"input_cost_per_token": 1, "output_cost_per_token": 2},
        "test/paid": {"input_cost_per_token": 1, "output_cost_per_token": 2},
        "test/bow": {"input_cost_per_token": 0.001},
    }
}
RAG = ["rag:read", "rag:write", "chat", "embeddings"]
C = "/ui/playground/collections"
CATS = b"# Cats\n\nCats purr when they are content and warm.\n"


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(
        tmp_path, providers=[BagOfWords(), EchoChat("test/paid")], pricing=PRICING
    ):
        yield governed


def events(response: httpx.Response) -> list[Any]:
    """The data of each server-sent event, ``[DONE]`` as the string."""
    found: list[Any] = []
    for block in response.text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: ") :]
            found.append(data if data == "[DONE]" else orjson.loads(data))
    return found


async def post(gov: Governed, path: str, csrf: str, body: Any) -> httpx.Response:
    return await gov.http.post(path, json=body, headers={"x-csrf-token": csrf})


async def ledger(gov: Governed, key: str) -> list[tuple[str, str, str | None, str]]:
    await gov.governance.shipper.drain()
    rows = (await gov.admin("GET", "/admin/ledger?limit=100")).json()["events"]
    return [
        (e["endpoint"], e["model"], e["tag"], e["status"]) for e in rows if e["key_id"] == key[3:19]
    ]


async def test_chat_streams_as_the_sessions_key_and_is_in_its_ledger(gov: Governed) -> None:
    key = await gov.new_key(name="dev", team="alpha", scopes=["chat"])
    csrf = await ui_login(gov.http, key)
    page = await gov.http.get("/ui/playground")
    assert page.status_code == 200
    assert '<option value="test/paid">' in page.text
    assert "<script>" not in page.text
    body = {
        "model": "test/paid",
        "system": "Be brief.",
        "messages": [{"role": "user", "content": "purring cats sleep"}],
        "temperature": 0.2,
        "max_tokens": 20,
    }
    response = await post(gov, "/ui/playground/chat", csrf, body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    stream = events(response)
    assert stream[-1] == "[DONE]"
    pieces = [c["choices"][0]["delta"].get("content", "") for c in stream[:-1] if c["choices"]]
    assert [p for p in pieces if p] == ["purring", "cats", "sleep"]  # piece by piece
    assert await ledger(gov, key) == [("chat", "test/paid", "ui.playground", "ok")]


async def test_chat_is_refused_what_the_key_may_not_do(gov: Governed) -> None:
    ask = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]}
    reader = await gov.new_key(name="reader", scopes=["rag:read"])
    csrf = await ui_login(gov.http, reader)
    refused = await post(gov, "/ui/playground/chat", csrf, ask)
    assert refused.status_code == 403
    assert "'chat' scope" in refused.json()["error"]["message"]

    narrow = await gov.new_key(name="narrow", scopes=["chat"], models=["test/paid"])
    csrf = await ui_login(gov.http, narrow)
    page = await gov.http.get("/ui/playground")
    assert '<option value="test/paid">' in page.text
    assert '<option value="test/echo">' not in page.text
    refused = await post(gov, "/ui/playground/chat", csrf, ask)
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "model"
    assert await ledger(gov, narrow) == []  # refused before any model call


async def test_chat_without_a_session_or_the_csrf_token_is_refused(gov: Governed) -> None:
    ask = {"model": "test/echo", "messages": [{"role": "user", "content": "hi"}]}
    response = await gov.http.post("/ui/playground/chat", json=ask)
    assert response.status_code == 303
    key = await gov.new_key(name="dev", scopes=["chat"])
    await ui_login(gov.http, key)
    response = await gov.http.post("/ui/playground/chat", json=ask)
    assert response.status_code == 403
    assert await ledger(gov, key) == []


async def test_a_collection_made_uploaded_and_asked_in_the_playground(gov: Governed) -> None:
    owner = await gov.new_key(name="owner", team="alpha", scopes=RAG)
    csrf = await ui_login(gov.http, owner)
    created = await post(gov, C, csrf, {"name": "pets", "embedding_model": "test/bow"})
    assert created.status_code == 201, created.text
    assert created.json()["owner"] == {"kind": "team", "id": "alpha"}
    uploaded = await gov.http.post(
        f"{C}/pets/files?name=cats.md", content=CATS, headers={"x-csrf-token": csrf}
    )
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["added"] == 1
    page = await gov.http.get("/ui/playground")
    assert '<option value="pets">' in page.text
    lines = b'{"text": "Dogs bark at night."}\n{"_id": "owls", "text": "Owls hoot."}\n'
    many = await gov.http.post(
        f"{C}/pets/files?name=more.jsonl", content=lines, headers={"x-csrf-token": csrf}
    )
    assert many.json()["added"] == 2, many.text
    listed = await gov.http.get(
        "/v1/rag/collections/pets/documents", headers={"authorization": f"Bearer {owner}"}
    )
    ids = {d["id"] for d in listed.json()["data"]}
    assert ids == {"upload:cats.md", "upload:more.jsonl#1", "owls"}

    answer = await post(
        gov, f"{C}/pets/answer", csrf, {"query": "Do cats purr?", "model": "test/paid"}
    )
    assert answer.status_code == 200, answer.text
    stream = events(answer)
    assert stream[0]["type"] == "results"
    assert stream[0]["results"][0]["document_id"] == "upload:cats.md"
    assert "Cats purr" in stream[0]["results"][0]["text"]
    assert stream[-2]["type"] == "done"
    assert stream[-1] == "[DONE]"
    tags = {(endpoint, tag) for endpoint, _, tag, _ in await ledger(gov, owner)}
    assert {("embeddings", "rag.ingest"), ("chat", "rag.answer")} <= tags


async def test_the_playground_keeps_teams_and_scopes_apart(gov: Governed) -> None:
    owner = await gov.new_key(name="owner", team="alpha", scopes=RAG)
    csrf = await ui_login(gov.http, owner)
    assert (await post(gov, C, csrf, {"name": "kb", "embedding_model": "test/bow"})).is_success

    other = await gov.new_key(name="other", team="beta", scopes=RAG)
    csrf = await ui_login(gov.http, other)
    assert '<option value="kb">' not in (await gov.http.get("/ui/playground")).text
    hidden = await post(gov, f"{C}/kb/answer", csrf, {"query": "cats"})
    assert hidden.status_code == 404
    upload = await gov.http.post(
        f"{C}/kb/files?name=x.txt", content=b"mine now", headers={"x-csrf-token": csrf}
    )
    assert upload.status_code == 404

    reader = await gov.new_key(name="reader", team="alpha", scopes=["rag:read", "chat"])
    csrf = await ui_login(gov.http, reader)
    page = await gov.http.get("/ui/playground")
    assert 'id="rag-upload"' not in page.text  # no upload form without rag:write
    upload = await gov.http.post(
        f"{C}/kb/files?name=x.txt", content=b"text", headers={"x-csrf-token": csrf}
    )
    assert upload.status_code == 403
    assert "'rag:write' scope" in upload.json()["error"]["message"]
    bad = await gov.http.post(
        f"{C}/kb/files?name=x.exe", content=b"MZ", headers={"x-csrf-token": csrf}
    )
    assert bad.status_code == 403  # the scope is checked before the file is read


async def test_a_gateway_only_process_offers_chat_but_not_rag(tmp_path: Path) -> None:
    async for gov in governed_app(tmp_path, server={"role": "gateway"}):
        key = await gov.new_key(name="dev", scopes=RAG)
        csrf = await ui_login(gov.http, key)
        page = await gov.http.get("/ui/playground")
        assert "RAG is served by the rag service" in page.text
        assert 'id="chat-form"' in page.text
        refused = await post(gov, C, csrf, {"name": "kb"})
        assert refused.status_code == 404
        assert not (tmp_path / "rag").exists()  # no engine was built here


async def test_an_upload_past_the_body_limit_is_refused_with_a_message(tmp_path: Path) -> None:
    async for gov in governed_app(
        tmp_path, providers=[BagOfWords()], server={"max_body_bytes": 2048}
    ):
        key = await gov.new_key(name="owner", team="alpha", scopes=RAG)
        csrf = await ui_login(gov.http, key)
        assert (await post(gov, C, csrf, {"name": "kb", "embedding_model": "test/bow"})).is_success
        big = await gov.http.post(
            f"{C}/kb/files?name=big.txt", content=b"word " * 1000, headers={"x-csrf-token": csrf}
        )
        assert big.status_code == 413
        assert "exceeds the limit of 2048 bytes" in big.json()["error"]["message"]
