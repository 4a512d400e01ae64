"""The guard on every surface that sends text to a model: a request carrying a
blocked entity is refused with 400 naming the rule, on chat completions, the
Responses API, Anthropic Messages, embeddings, RAG ingestion and RAG answers,
and the upstream receives nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import RunningServer, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import admin
from .guard_helpers import start_guarded

SSN = "536-22-1234"
TEXT = f"My SSN is {SSN}, what bread should I bake?"
RAG = "/v1/rag/collections"

SURFACES: dict[str, tuple[str, dict[str, object]]] = {
    "chat": (
        "/v1/chat/completions",
        {"model": "echo", "messages": [{"role": "user", "content": TEXT}]},
    ),
    "responses": ("/v1/responses", {"model": "echo", "input": TEXT}),
    "messages": (
        "/v1/messages",
        {"model": "echo", "max_tokens": 32, "messages": [{"role": "user", "content": TEXT}]},
    ),
    "embeddings": ("/v1/embeddings", {"model": "vectors", "input": [TEXT]}),
    "rag ingestion": (f"{RAG}/bread/documents", {"documents": [{"id": "d", "text": TEXT}]}),
    "rag answer": (f"{RAG}/bread/answer", {"query": TEXT}),
}


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_guarded(
        tmp_path_factory.mktemp("guard-surfaces"), upstream, "  entities: {US_SSN: block}"
    )
    created = admin(running, "POST", RAG, {"name": "bread", "embedding_model": "vectors"})
    assert created.status_code in (200, 201), created.text
    added = admin(
        running, "POST", f"{RAG}/bread/documents", {"documents": [{"id": "b", "text": "Rye."}]}
    )
    assert added.status_code == 200, added.text
    yield running
    stop_server(running)


@pytest.mark.parametrize("surface", list(SURFACES))
def test_a_blocked_entity_is_refused_on_every_surface(
    surface: str, server: RunningServer, upstream: FakeUpstream
) -> None:
    upstream.reset()
    path, body = SURFACES[surface]
    reply = admin(server, "POST", path, body)
    assert reply.status_code == 400, reply.text
    assert "entities.US_SSN" in reply.text
    if surface != "messages":  # Anthropic's error shape has a type and no code
        assert "content_policy_violation" in reply.text
    assert SSN not in reply.text
    assert upstream.requests == []
