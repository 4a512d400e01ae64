"""The /v1/rag routes in-process: the issue's contract and its error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from gatehouse.core.config import Settings
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.server import create_app

from .fakes import EchoChat
from .rag_fakes import BagOfWords

C = "/v1/rag/collections"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=tmp_path, rag={"max_document_chars": 2000})
    registry = ModelRegistry([EchoChat(), BagOfWords()], {"default": "test/echo"})
    app = create_app(settings, gateway=Gateway(registry, started_at=0))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as client:
        created = await client.post(C, json={"name": "kb", "embedding_model": "test/bow"})
        assert created.status_code == 201
        yield client


DOCS = {
    "documents": [
        {"id": "a", "text": "Cats purr when they are content.", "metadata": {"lang": "en"}},
        {"id": "b", "text": "Tax returns are due in April.", "metadata": {"lang": "en"}},
    ]
}


async def test_contract_round_trip(http: httpx.AsyncClient) -> None:
    added = (await http.post(f"{C}/kb/documents", json=DOCS)).json()
    assert added == {"added": 2, "unchanged": 0, "replaced": 0, "chunks": 2}
    again = (await http.post(f"{C}/kb/documents", json=DOCS)).json()
    assert again == {"added": 0, "unchanged": 2, "replaced": 0, "chunks": 0}

    listed = (await http.get(C)).json()["data"]
    assert [c["name"] for c in listed] == ["kb"]
    described = (await http.get(f"{C}/kb")).json()
    assert (described["chunks"], described["documents"], described["dimensions"]) == (2, 2, 64)
    assert [d["id"] for d in (await http.get(f"{C}/kb/documents")).json()["data"]] == ["a", "b"]
    assert (
        (await http.get(f"{C}/kb/documents/a")).json()["chunk_list"][0]["text"].startswith("Cats")
    )

    found = (await http.post(f"{C}/kb/search", json={"query": "cats purr", "top_k": 1})).json()
    (hit,) = found["results"]
    assert hit["document_id"] == "a"
    assert set(hit) == {"document_id", "chunk_id", "text", "score", "metadata"}
    filtered = await http.post(
        f"{C}/kb/search", json={"query": "cats tax", "filter": {"document_id": "b"}}
    )
    assert [r["document_id"] for r in filtered.json()["results"]] == ["b"]

    answer = (await http.post(f"{C}/kb/answer", json={"query": "why do cats purr"})).json()
    assert answer["citations"]
    assert {c["chunk_id"] for c in answer["citations"]} <= {
        r["chunk_id"] for r in answer["results"]
    }

    assert (await http.delete(f"{C}/kb/documents/a")).json() == {"id": "a", "deleted": True}
    assert (await http.get(f"{C}/kb/documents/a")).status_code == 404
    assert (await http.delete(f"{C}/kb")).status_code == 200
    assert (await http.get(f"{C}/kb")).status_code == 404


async def test_answer_streams_as_sse(http: httpx.AsyncClient) -> None:
    await http.post(f"{C}/kb/documents", json=DOCS)
    response = await http.post(f"{C}/kb/answer", json={"query": "cats purr", "stream": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e.removeprefix("data: ") for e in response.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    parsed = [orjson.loads(e) for e in events[:-1]]
    assert parsed[0]["type"] == "results"
    assert parsed[-1]["type"] == "done"
    assert parsed[-1]["citations"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code", "param"),
    [
        ("post", f"{C}/nope/search", {"query": "x"}, 404, "not_found", "collection"),
        ("post", f"{C}/nope/documents", DOCS, 404, "not_found", "collection"),
        ("post", C, {"name": "kb"}, 409, "conflict", "name"),
        ("post", C, {"name": "../etc"}, 400, "invalid_value", "name"),
        ("post", C, {"name": "p", "query_prefix": "q" * 65}, 400, "invalid_value", "query_prefix"),
        (
            "post",
            f"{C}/kb/search",
            {"query": "x", "filter": {"colour": "red"}},
            400,
            "invalid_value",
            "filter",
        ),
        ("post", f"{C}/kb/search", {"query": "x", "mode": "magic"}, 400, "invalid_value", "mode"),
        (
            "post",
            f"{C}/kb/documents",
            {"documents": [{"text": ""}]},
            400,
            "invalid_value",
            "documents[0].text",
        ),
        (
            "post",
            f"{C}/kb/documents",
            {"documents": [{"text": "x" * 2001}]},
            400,
            "invalid_value",
            "documents[0].text",
        ),
        ("post", f"{C}/kb/documents", {"documents": []}, 400, "invalid_value", "documents"),
        ("get", f"{C}/kb/documents/missing", None, 404, "not_found", "document_id"),
    ],
)
async def test_bad_input_is_an_openai_shaped_error(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    body: object,
    status: int,
    code: str,
    param: str,
) -> None:
    response = await http.request(method.upper(), path, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert error["param"] == param
    assert error["message"]


async def test_failed_request_leaves_the_collection_untouched(http: httpx.AsyncClient) -> None:
    await http.post(f"{C}/kb/documents", json=DOCS)
    bad = {"documents": [{"id": "c", "text": "fine"}, {"id": "d", "text": "   "}]}
    assert (await http.post(f"{C}/kb/documents", json=bad)).status_code == 400
    assert (await http.get(f"{C}/kb")).json()["documents"] == 2


async def test_with_authentication_on_rag_routes_need_a_credential(tmp_path: Path) -> None:
    from .governed import MASTER, governed_app

    async for governed in governed_app(tmp_path):
        anonymous = await governed.http.get(C)
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["message"]
        bad = await governed.http.post(
            f"{C}/kb/search", json={"query": "x"}, headers={"authorization": "Bearer nope"}
        )
        assert bad.status_code == 401
        allowed = await governed.http.get(C, headers={"authorization": f"Bearer {MASTER}"})
        assert allowed.status_code == 200
