"""gatehouse.Client against a real server with the real local models.

Chat, streams, embeddings, a RAG round trip and structured output, each as a
key of one team; another team's key, a key without the scope and a bad key
come back as the client's typed errors.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import BaseModel, Field

from gatehouse.client import (
    AsyncClient,
    AuthenticationError,
    Client,
    NotFoundError,
    PermissionDeniedError,
)
from gatehouse.prompts import StructuredOutput, arun, run

from .conftest import RunningServer, start_server, stop_server
from .governance_helpers import MASTER, create_key

pytestmark = pytest.mark.integration

RAG_SCOPES = ["chat", "embeddings", "rag:read", "rag:write"]
DOCS = [
    {"id": "tea", "text": "Green tea is steeped at 80 degrees Celsius for two minutes."},
    {"id": "bikes", "text": "A bicycle chain should be cleaned and oiled every 300 kilometres."},
    {"id": "owls", "text": "Barn owls hunt at night and find mice by sound alone."},
]


class City(BaseModel):
    name: str = Field(max_length=20)
    country: str = Field(max_length=20)


@pytest.fixture(scope="module")
def governed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("client")
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def team_a(governed: RunningServer) -> Iterator[Client]:
    key = create_key(governed, team="team-a", scopes=RAG_SCOPES)
    with Client(governed.base_url, api_key=key) as client:
        yield client


@pytest.fixture(scope="module")
def team_b_key(governed: RunningServer) -> str:
    return create_key(governed, team="team-b", scopes=RAG_SCOPES)


def test_chat_and_stream_on_the_local_model(team_a: Client) -> None:
    reply = team_a.chat("Say hello.", model="local/smollm2", temperature=0, max_tokens=12)
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens > 0
    stream = team_a.stream("Say hello.", model="local/smollm2", temperature=0, max_tokens=12)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    # Greedy decoding: the stream says what the plain call said.
    assert text == reply.choices[0].message.content
    assert stream.usage is not None
    assert stream.usage.completion_tokens == reply.usage.completion_tokens
    assert stream.request_id


def test_responses_on_the_local_model(team_a: Client) -> None:
    reply = team_a.responses(
        "Say hello.", model="local/smollm2", temperature=0, max_output_tokens=12
    )
    assert reply.status in {"completed", "incomplete"}
    assert reply.output_text
    assert reply.usage is not None
    assert reply.usage.output_tokens > 0


def test_embeddings_on_the_local_model(team_a: Client) -> None:
    answer = team_a.embed(["green tea", "oolong tea", "bicycle chain"])
    vectors = [d.embedding for d in answer.data]
    assert all(isinstance(v, list) and len(v) == 384 for v in vectors)


def test_a_rag_round_trip_and_another_team_refused(
    governed: RunningServer, team_a: Client, team_b_key: str
) -> None:
    collection = team_a.create_collection("client-notes", description="client test")
    assert collection.name == "client-notes"
    result = team_a.ingest("client-notes", DOCS)
    assert result.added == 3
    assert result.chunks >= 3
    assert "client-notes" in [c.name for c in team_a.collections()]
    hits = team_a.search("client-notes", "At what temperature is green tea steeped?", top_k=2)
    assert hits[0].document_id == "tea"
    answer = team_a.answer("client-notes", "How do barn owls find mice?", top_k=2, max_tokens=48)
    assert answer.results
    assert {c.document_id for c in answer.citations} <= {"tea", "bikes", "owls"}
    # Another team's key sees nothing of team A's collection: 404, as if absent.
    with Client(governed.base_url, api_key=team_b_key) as team_b:
        with pytest.raises(NotFoundError) as caught:
            team_b.search("client-notes", "tea")
        assert caught.value.status == 404
        assert caught.value.request_id
        assert "client-notes" not in [c.name for c in team_b.collections()]
    team_a.delete_collection("client-notes")
    with pytest.raises(NotFoundError):
        team_a.collection("client-notes")


def test_missing_scope_and_bad_key_are_typed_errors(governed: RunningServer) -> None:
    embed_only = create_key(governed, team="team-a", scopes=["embeddings"])
    with Client(governed.base_url, api_key=embed_only) as client:
        with pytest.raises(PermissionDeniedError) as caught:
            client.chat("hi", model="local/smollm2", max_tokens=4)
        assert caught.value.code == "permission_denied"
        assert caught.value.type == "invalid_request_error"
    with Client(governed.base_url, api_key="gh-not-a-key") as client:
        with pytest.raises(AuthenticationError) as denied:
            client.embed("x")
        assert denied.value.code == "invalid_api_key"
        assert denied.value.status == 401


def test_structured_output_on_the_local_model(team_a: Client) -> None:
    ask = StructuredOutput(City, model="local/smollm2", max_tokens=60)
    result = run(ask.flow("Name the capital city of France and its country."), team_a)
    assert isinstance(result.value, City)
    assert result.mode == "response_format"  # the local model takes the schema as a grammar


async def test_the_async_client_on_the_local_model(
    governed: RunningServer, team_b_key: str
) -> None:
    async with AsyncClient(governed.base_url, api_key=team_b_key) as client:
        ask = StructuredOutput(City, model="local/smollm2", max_tokens=60)
        result = await arun(ask.flow("Name a large city in Japan and its country."), client)
        assert isinstance(result.value, City)
        stream = await client.stream("Count to three.", model="local/smollm2", max_tokens=8)
        assert await stream.text()
