"""RAG under governance: tenancy of collections, and model calls made as the caller.

Two teams share one server. Neither may see, search, change or delete the
other's collections (404, as for a collection that does not exist), and every
model call a RAG route makes runs through the pipeline as the calling key:
its scopes, its allowed models, its budget, and a ledger event tagged with
the RAG operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .fakes import EchoChat
from .governed import Governed, governed_app
from .rag_fakes import BagOfWords

C = "/v1/rag/collections"
RAG = ["rag:read", "rag:write", "chat", "embeddings"]
DOCS = {
    "documents": [
        {"id": "a", "text": "Cats purr when they are content and warm."},
        {"id": "b", "text": "Tax returns are due in April every year."},
    ]
}
PRICING = {
    "models": {
        "test/echo": {"input_cost_per_token": 1, "output_cost_per_token": 2},
        "test/paid": {"input_cost_per_token": 1, "output_cost_per_token": 2},
        "test/bow": {"input_cost_per_token": 0.001},
    }
}


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(
        tmp_path, providers=[BagOfWords(), EchoChat("test/paid")], pricing=PRICING
    ):
        yield governed


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def _team_collection(gov: Governed, team: str, name: str) -> str:
    key = await gov.new_key(name=team, team=team, scopes=RAG)
    created = await gov.http.post(
        C, json={"name": name, "embedding_model": "test/bow"}, headers=_auth(key)
    )
    assert created.status_code == 201, created.text
    assert created.json()["owner"] == {"kind": "team", "id": team}
    added = await gov.http.post(f"{C}/{name}/documents", json=DOCS, headers=_auth(key))
    assert added.status_code == 200, added.text
    return key


async def test_a_team_never_reaches_another_teams_collection(gov: Governed) -> None:
    alpha = await _team_collection(gov, "alpha", "alpha-kb")
    beta = await _team_collection(gov, "beta", "beta-kb")
    calls = [
        ("GET", f"{C}/alpha-kb", None),
        ("DELETE", f"{C}/alpha-kb", None),
        ("POST", f"{C}/alpha-kb/documents", DOCS),
        ("GET", f"{C}/alpha-kb/documents", None),
        ("GET", f"{C}/alpha-kb/documents/a", None),
        ("DELETE", f"{C}/alpha-kb/documents/a", None),
        ("POST", f"{C}/alpha-kb/search", {"query": "cats"}),
        ("POST", f"{C}/alpha-kb/search", {"query": "cats", "mode": "keyword"}),
        ("POST", f"{C}/alpha-kb/answer", {"query": "Do cats purr?"}),
        ("POST", f"{C}/alpha-kb/answer", {"query": "Do cats purr?", "stream": True}),
    ]
    for method, path, body in calls:
        refused = await gov.http.request(method, path, json=body, headers=_auth(beta))
        assert refused.status_code == 404, (method, path, refused.text)
        # The same answer as for a collection that does not exist.
        absent = path.replace("alpha-kb", "no-such-kb")
        missing = await gov.http.request(method, absent, json=body, headers=_auth(beta))
        assert missing.status_code == 404
        assert refused.json()["error"]["message"] == missing.json()["error"]["message"].replace(
            "no-such-kb", "alpha-kb"
        )

    listed = (await gov.http.get(C, headers=_auth(beta))).json()["data"]
    assert [c["name"] for c in listed] == ["beta-kb"]
    # Alpha's collection and documents are intact, and a teammate's key sees them.
    teammate = await gov.new_key(name="alpha-2", team="alpha", scopes=RAG)
    described = (await gov.http.get(f"{C}/alpha-kb", headers=_auth(teammate))).json()
    assert described["documents"] == 2
    assert (
        await gov.http.get(f"{C}/alpha-kb/documents/a", headers=_auth(alpha))
    ).status_code == 200
    # Administrators see every collection.
    every = (await gov.admin("GET", C)).json()["data"]
    assert [c["name"] for c in every] == ["alpha-kb", "beta-kb"]


async def test_a_collection_can_be_owned_by_one_key_or_an_organisation(gov: Governed) -> None:
    solo = await gov.new_key(name="solo", team="alpha", org="acme", scopes=RAG)
    colleague = await gov.new_key(name="colleague", team="alpha", org="acme", scopes=RAG)
    cousin = await gov.new_key(name="cousin", team="beta", org="acme", scopes=RAG)
    for name, owner in [("mine", "key"), ("ours", "org")]:
        created = await gov.http.post(
            C,
            json={"name": name, "embedding_model": "test/bow", "owner": owner},
            headers=_auth(solo),
        )
        assert created.status_code == 201, created.text
    assert (await gov.http.get(f"{C}/mine", headers=_auth(colleague))).status_code == 404
    assert (await gov.http.get(f"{C}/ours", headers=_auth(cousin))).status_code == 200
    teamless = await gov.new_key(name="teamless", scopes=RAG)
    refused = await gov.http.post(C, json={"name": "x", "owner": "team"}, headers=_auth(teamless))
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "owner"


async def test_rag_model_calls_obey_the_callers_scopes_models_and_budget(gov: Governed) -> None:
    owner = await _team_collection(gov, "alpha", "kb")
    ask = {"query": "Do cats purr?", "model": "test/paid"}

    # Only the embeddings scope and one model: refused on chat and on RAG alike.
    narrow = await gov.new_key(
        name="narrow",
        team="alpha",
        scopes=["embeddings"],
        models=["test/bow"],
        budget={"max_usd": 0.5, "period": "day"},
    )
    sdk = gov.sdk(narrow)
    with pytest.raises(Exception, match="chat"):
        await sdk.chat.completions.create(
            model="test/paid", messages=[{"role": "user", "content": "hi"}]
        )
    refused = await gov.http.post(f"{C}/kb/answer", json=ask, headers=_auth(narrow))
    assert refused.status_code == 403

    # RAG scopes, but the answer model is not among the key's models.
    reader = await gov.new_key(
        name="reader", team="alpha", scopes=RAG, models=["test/bow", "test/echo"]
    )
    refused = await gov.http.post(f"{C}/kb/answer", json=ask, headers=_auth(reader))
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "model"

    # RAG scopes without chat: search works (embeddings), answers do not.
    searcher = await gov.new_key(name="searcher", team="alpha", scopes=["rag:read", "embeddings"])
    found = await gov.http.post(f"{C}/kb/search", json={"query": "cats"}, headers=_auth(searcher))
    assert found.status_code == 200
    refused = await gov.http.post(f"{C}/kb/answer", json=ask, headers=_auth(searcher))
    assert refused.status_code == 403
    assert "chat" in refused.json()["error"]["message"]

    # A hard budget that one paid answer exceeds: refused before the call.
    poor = await gov.new_key(
        name="poor", team="alpha", scopes=RAG, budget={"max_usd": 0.5, "period": "day"}
    )
    refused = await gov.http.post(f"{C}/kb/answer", json=ask, headers=_auth(poor))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"

    # Every RAG model call is in the ledger as its caller, tagged with the operation.
    answered = await gov.http.post(f"{C}/kb/answer", json=ask, headers=_auth(owner))
    assert answered.status_code == 200, answered.text
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger?limit=100")).json()["events"]
    mine = [
        (e["endpoint"], e["model"], e["tag"], e["status"])
        for e in events
        if e["key_id"] == owner[3:19]
    ]
    assert mine[0] == ("embeddings", "test/bow", "rag.ingest", "ok")
    assert ("embeddings", "test/bow", "rag.answer", "ok") in mine
    assert mine[-1] == ("chat", "test/paid", "rag.answer", "ok")
    searched = [e for e in events if e["key_id"] == searcher[3:19]]
    assert next((e["endpoint"], e["tag"]) for e in searched) == ("embeddings", "rag.search")
    poor_events = [e for e in events if e["key_id"] == poor[3:19]]
    assert poor_events
    assert all(e["status"] != "ok" or e["endpoint"] == "embeddings" for e in poor_events)
    spend = (await gov.admin("GET", "/admin/spend?group_by=key")).json()["rows"]
    by_key = {row["group"]: row for row in spend}
    assert by_key[owner[3:19]]["cost_usd"] > 0
    assert by_key[poor[3:19]]["refused"] >= 1


async def test_a_search_counts_once_against_the_callers_requests_per_minute(
    gov: Governed,
) -> None:
    await _team_collection(gov, "alpha", "kb")

    async def three_searches(mode: str, **more: str) -> list[int]:
        key = await gov.new_key(name=mode, team="alpha", scopes=RAG, limits={"rpm": 2})
        codes = []
        for _ in range(3):
            body = {"query": "cats", "mode": mode, **more}
            found = await gov.http.post(f"{C}/kb/search", json=body, headers=_auth(key))
            if found.status_code == 429:
                assert found.json()["error"]["code"] == "rate_limit_exceeded"
            codes.append(found.status_code)
        return codes

    # A keyword search makes no model call: the route counts it (it was free).
    assert await three_searches("keyword") == [200, 200, 429]
    assert await three_searches("keyword", expansion="hyde") == [200, 200, 429]  # no HyDE there
    # One that embeds its query is counted by that call, once, not twice.
    assert await three_searches("hybrid") == [200, 200, 429]


async def test_only_an_administrator_names_a_cross_encoder_folder(gov: Governed) -> None:
    key = await gov.new_key(name="writer", team="alpha", scopes=RAG)
    body = {"name": "ce", "embedding_model": "test/bow", "cross_encoder": "/etc"}
    refused = await gov.http.post(C, json=body, headers=_auth(key))
    assert refused.status_code == 403
    assert refused.json()["error"]["param"] == "cross_encoder"
    assert "/etc" not in refused.text  # nothing about the path is told back
    assert (await gov.http.get(f"{C}/ce", headers=_auth(key))).status_code == 404
    # An administrator's request gets as far as checking the folder (not a model here).
    checked = await gov.admin("POST", C, body)
    assert checked.status_code == 400
