"""Service roles: a gateway process and a RAG process, split, over real HTTP.

The RAG service (``serve --role rag``) checks each caller's key against the
database it shares with the gateway (``serve --role gateway``) and sends every
model call to the gateway with that same key, so the gateway's scopes, allowed
models and ledger apply to the caller. The models are the fake upstream's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, call, create_key, ledger, write_config

RAG = "/v1/rag/collections"
DOCUMENTS = [
    {"id": "bread", "text": "Sourdough bread rises slowly with a wild yeast starter."},
    {"id": "tea", "text": "Green tea is steeped briefly in water below boiling."},
]
RAG_SCOPES = ["chat", "embeddings", "rag:read", "rag:write"]


@dataclass
class Split:
    gateway: RunningServer
    rag: RunningServer


@pytest.fixture(scope="module")
def split(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Split]:
    root = tmp_path_factory.mktemp("roles")
    extra = f"""
  - name: vectors
    mode: embedding
    deployments:
      - provider: openai_compat
        model: vectors-model
        base_url: '{upstream.base_url}/v1'
rag:
  answer_model: up
store:
  database_url: 'sqlite:///{root / "shared.db"}'
"""
    config = write_config(root / "gatehouse.yaml", upstream, extra)
    env = {"GATEHOUSE_MASTER_KEY": MASTER}
    gateway = start_server(root / "gateway", "--role", "gateway", env=env, config=config)
    rag_env = {**env, "GATEHOUSE_RAG__GATEWAY_URL": gateway.base_url}
    rag = start_server(root / "rag", "--role", "rag", env=rag_env, config=config)
    yield Split(gateway, rag)
    stop_server(rag)
    stop_server(gateway)


def test_each_role_serves_only_its_routes(split: Split) -> None:
    assert call(split.gateway, MASTER, "GET", RAG).status_code == 404
    assert call(split.rag, MASTER, "GET", RAG).status_code == 200
    chat = {"model": "up", "messages": [{"role": "user", "content": "hi"}]}
    assert call(split.rag, MASTER, "POST", "/v1/chat/completions", chat).status_code == 404
    assert call(split.rag, MASTER, "GET", "/admin/keys").status_code == 404
    assert call(split.gateway, MASTER, "POST", "/v1/chat/completions", chat).status_code == 200
    ready = call(split.rag, MASTER, "GET", "/readyz").json()
    assert ready["status"] == "ready", ready
    assert "rag:gateway" in {check["name"] for check in ready["checks"]}
    # Without credentials (a Kubernetes probe): the verdict, not the checks.
    assert httpx.get(f"{split.rag.base_url}/readyz", timeout=10).json() == {"status": "ready"}


def test_rag_calls_run_on_the_gateway_as_the_caller(split: Split, upstream: FakeUpstream) -> None:
    key = create_key(split.gateway, team="red", scopes=RAG_SCOPES)
    created = call(split.rag, key, "POST", RAG, {"name": "red-notes", "embedding_model": "vectors"})
    assert created.status_code == 201, created.text
    added = call(split.rag, key, "POST", f"{RAG}/red-notes/documents", {"documents": DOCUMENTS})
    assert added.status_code == 200, added.text
    found = call(split.rag, key, "POST", f"{RAG}/red-notes/search", {"query": "sourdough"})
    assert found.status_code == 200, found.text
    assert {hit["document_id"] for hit in found.json()["results"]} == {"bread", "tea"}
    answered = call(split.rag, key, "POST", f"{RAG}/red-notes/answer", {"query": "bread?"})
    assert answered.status_code == 200, answered.text
    assert answered.json()["answer"]
    streamed = call(
        split.rag, key, "POST", f"{RAG}/red-notes/answer", {"query": "tea?", "stream": True}
    )
    assert streamed.status_code == 200, streamed.text
    events = [line[6:] for line in streamed.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert any('"delta"' in event for event in events), events
    rewritten = {"query": "sourdough", "expansion": "multi_query"}
    assert call(split.rag, key, "POST", f"{RAG}/red-notes/search", rewritten).status_code == 200
    # Every model call reached the gateway with the caller's key, tagged by operation.
    seen = ledger(split.gateway, key, 9)
    assert {(e["endpoint"], e["tag"]) for e in seen} == {
        ("embeddings", "rag.ingest"),
        ("embeddings", "rag.search"),
        ("chat", "rag.search"),
        ("embeddings", "rag.answer"),
        ("chat", "rag.answer"),
    }
    assert {e["team"] for e in seen} == {"red"}
    assert {e["status"] for e in seen} == {"ok"}
    assert sum(e["stream"] for e in seen if e["endpoint"] == "chat") == 1


def test_the_rag_service_refuses_what_the_caller_may_not_do(split: Split) -> None:
    owner = create_key(split.gateway, team="green", scopes=RAG_SCOPES)
    made = call(
        split.rag, owner, "POST", RAG, {"name": "green-notes", "embedding_model": "vectors"}
    )
    assert made.status_code == 201, made.text
    reader = create_key(split.gateway, team="green", scopes=["rag:read", "embeddings"])
    write = call(
        split.rag, reader, "POST", f"{RAG}/green-notes/documents", {"documents": DOCUMENTS}
    )
    assert write.status_code == 403, write.text
    stranger = create_key(split.gateway, team="blue", scopes=RAG_SCOPES)
    assert call(split.rag, stranger, "GET", f"{RAG}/green-notes").status_code == 404
    search = call(split.rag, stranger, "POST", f"{RAG}/green-notes/search", {"query": "tea"})
    assert search.status_code == 404, search.text
    # Allowed to search, but the gateway does not let this key use the embedding model.
    narrow = create_key(split.gateway, team="green", scopes=RAG_SCOPES, models=["up"])
    refused = call(split.rag, narrow, "POST", f"{RAG}/green-notes/search", {"query": "tea"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "permission_denied"
    assert "vectors" in refused.json()["error"]["message"]
    assert call(split.rag, "gh-not-a-key", "GET", RAG).status_code == 401


def test_a_gateway_that_is_down_is_a_clear_502(upstream: FakeUpstream, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "gatehouse.yaml",
        upstream,
        f"store:\n  database_url: 'sqlite:///{tmp_path / 'shared.db'}'\n",
    )
    env = {"GATEHOUSE_MASTER_KEY": MASTER}
    gateway = start_server(tmp_path / "gateway", "--role", "gateway", env=env, config=config)
    rag_env = {**env, "GATEHOUSE_RAG__GATEWAY_URL": gateway.base_url}
    rag = start_server(tmp_path / "rag", "--role", "rag", env=rag_env, config=config)
    try:
        made = call(rag, MASTER, "POST", RAG, {"name": "down", "embedding_model": "up"})
        assert made.status_code == 201, made.text
        stop_server(gateway)
        searched = call(rag, MASTER, "POST", f"{RAG}/down/search", {"query": "anything"})
        assert searched.status_code == 502, searched.text
        error = searched.json()["error"]
        assert error["code"] == "upstream_unreachable"
        assert gateway.base_url in error["message"]
        ready = call(rag, MASTER, "GET", "/readyz")
        assert ready.status_code == 503
        assert any(r.startswith("rag:gateway") for r in ready.json()["reasons"])
    finally:
        stop_server(rag)
        stop_server(gateway)
