"""``POST /v1/rerank`` against real gatehouse processes: the local cosine path on the
real MiniLM, and Cohere, Jina and vLLM upstreams on the fake upstream, governed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import MASTER, admin, create_key, write_config

DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "The recipe needs two eggs, flour and a pinch of salt.",
    "France's capital city, Paris, sits on the Seine.",
    "Basketball is played by two teams of five players.",
]
QUERY = "What is the capital of France?"


def test_local_rerank_ranks_by_minilm_cosine(server: RunningServer) -> None:
    response = httpx.post(
        f"{server.base_url}/v1/rerank",
        json={"model": "local/rerank", "query": QUERY, "documents": DOCUMENTS, "top_n": 2},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert {r["index"] for r in answer["results"]} == {0, 2}
    assert answer["usage"]["prompt_tokens"] > 0


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("rerank")
    extra = "\n".join(
        f"""  - name: rerank-{name}
    mode: rerank
    deployments:
      - provider: {name}
        model: {name}-reranker
        base_url: '{upstream.base_url}'
        input_cost_per_token: 0.0078125
        input_cost_per_query: 0.25"""
        for name in ("cohere", "jina", "vllm")
    )
    config = write_config(root / "gatehouse.yaml", upstream, extra)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


def _ledger(server: RunningServer, key: str) -> list[dict[str, Any]]:
    """The key's ledger events, once shipped from the outbox (every 0.2 s by default)."""
    deadline = time.monotonic() + 10
    while True:
        events = admin(server, "GET", "/admin/ledger?limit=10000").json()["events"]
        mine = [e for e in events if e["key_id"] == key[3:19]]
        if mine or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


def _rerank(server: RunningServer, key: str, model: str, **extra: object) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/rerank",
        json={"model": model, "query": "paris capital", "documents": DOCUMENTS, **extra},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("name", "path"), [("cohere", "/v2/rerank"), ("jina", "/v1/rerank"), ("vllm", "/rerank")]
)
def test_upstream_rerankers_are_called_and_metered(
    gateway: RunningServer, upstream: FakeUpstream, name: str, path: str
) -> None:
    upstream.reset()
    key = create_key(gateway, team=f"team-{name}")
    response = _rerank(gateway, key, f"rerank-{name}", top_n=2, return_documents=True)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [r["index"] for r in answer["results"]] == [0, 2]
    assert answer["results"][0]["document"] == {"text": DOCUMENTS[0]}
    sent = upstream.requests[-1]
    assert (sent.path, sent.body["model"], sent.body["top_n"]) == (path, f"{name}-reranker", 2)
    assert sent.body["documents"] == DOCUMENTS

    events = _ledger(gateway, key)
    assert [(e["endpoint"], e["model"], e["status"]) for e in events] == [
        ("rerank", f"rerank-{name}", "ok")
    ]
    tokens = answer["usage"]["prompt_tokens"]
    assert events[0]["prompt_tokens"] == tokens
    assert events[0]["cost_usd"] == pytest.approx(tokens * 0.0078125 + 0.25)


def test_an_upstream_failure_is_an_openai_shaped_error(
    gateway: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    upstream.then(*[Behaviour(kind="status", status=500)] * 3)
    response = _rerank(gateway, create_key(gateway), "rerank-jina")
    assert response.status_code >= 500
    assert "error" in response.json()


def test_keys_without_the_scope_or_the_model_are_refused(gateway: RunningServer) -> None:
    chat_only = create_key(gateway, scopes=["chat"])
    assert _rerank(gateway, chat_only, "rerank-cohere").status_code == 403
    other_model = create_key(gateway, models=["rerank-jina"])
    refused = _rerank(gateway, other_model, "rerank-cohere")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert _rerank(gateway, "gh-not-a-key", "rerank-cohere").status_code == 401
