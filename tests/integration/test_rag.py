"""RAG end to end: CLI ingestion of short essays, answers over HTTP.

Uses the real local models (MiniLM embeddings, SmolLM2 answers) and a real
server process. The corpus is ``tests/fixtures/essays.jsonl``: 24 short texts
written for these tests, one topic each, so a query has one right document;
``bench/retrieval.py`` and the docs cover the labelled evaluation sets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from .conftest import RunningServer, start_server, stop_server

ESSAYS = Path(__file__).resolve().parents[1] / "fixtures" / "essays.jsonl"
COUNT = 24
C = "/v1/rag/collections"


def cli(
    data_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def corpus() -> Path:
    assert len(ESSAYS.read_bytes().splitlines()) == COUNT
    return ESSAYS


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    data = tmp_path_factory.mktemp("rag") / "data"
    first = cli(data, "ingest", str(corpus), "--collection", "essays")
    assert first.returncode == 0, first.stderr
    assert f"{COUNT} added" in first.stdout
    return data


@pytest.fixture(scope="module")
def rag_server(data_dir: Path) -> Iterator[RunningServer]:
    # A small context keeps the 135M chat model quick on 2 cores.
    running = start_server(data_dir, env={"GATEHOUSE_RAG__CONTEXT_TOKENS": "300"})
    yield running
    stop_server(running)


def test_reingest_is_a_no_op(data_dir: Path, corpus: Path) -> None:
    again = cli(data_dir, "ingest", str(corpus), "--collection", "essays")
    assert again.returncode == 0, again.stderr
    assert f"0 added, 0 replaced, {COUNT} unchanged" in again.stdout


def test_answer_over_http_cites_ingested_chunks(rag_server: RunningServer) -> None:
    base = rag_server.base_url
    body = {"query": "How do I keep my sourdough starter alive?", "max_tokens": 64}
    reply = httpx.post(f"{base}{C}/essays/answer", json=body, timeout=300)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["results"][0]["document_id"] == "sourdough"
    assert answer["answer"]
    assert answer["citations"]
    for citation in answer["citations"]:
        doc = httpx.get(f"{base}{C}/essays/documents/{citation['document_id']}", timeout=30).json()
        assert citation["chunk_id"] in {c["chunk_id"] for c in doc["chunk_list"]}


def test_search_and_streamed_answer_through_the_openai_client(rag_server: RunningServer) -> None:
    client = rag_server.openai()
    found = client.post(
        "/rag/collections/essays/search",
        body={"query": "why do bees dance in the hive", "top_k": 3},
        cast_to=object,
    )
    assert isinstance(found, dict)
    assert len(found["results"]) == 3
    assert found["results"][0]["document_id"] == "honeybees"
    with httpx.stream(
        "POST",
        f"{rag_server.base_url}{C}/essays/answer",
        json={"query": "What causes spring tides?", "stream": True, "max_tokens": 32},
        timeout=300,
    ) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    parsed = [orjson.loads(e) for e in events[:-1]]
    assert parsed[0]["type"] == "results"
    assert parsed[0]["results"][0]["document_id"] == "tides"
    assert parsed[-1]["type"] == "done"


def test_delete_removes_chunks_from_both_indexes(rag_server: RunningServer) -> None:
    base = rag_server.base_url
    hit = httpx.post(
        f"{base}{C}/essays/search", json={"query": "compost heap", "top_k": 1}, timeout=60
    ).json()["results"][0]
    assert hit["document_id"] == "compost"
    assert (
        httpx.delete(f"{base}{C}/essays/documents/{hit['document_id']}", timeout=60).status_code
        == 200
    )
    for mode in ("dense", "keyword", "hybrid"):
        results = httpx.post(
            f"{base}{C}/essays/search",
            json={"query": hit["text"][:300], "top_k": 20, "mode": mode},
            timeout=60,
        ).json()["results"]
        assert hit["document_id"] not in {r["document_id"] for r in results}, mode


def test_bad_files_fail_cleanly_and_write_nothing(data_dir: Path, tmp_path: Path) -> None:
    before = orjson.loads(cli(data_dir, "collections", "show", "essays").stdout)["chunks"]
    cases = {
        "tool.exe": b"MZ\x90\x00",
        "empty.txt": b"",
        "binary.txt": b"\x00\x01\x02binary",
    }
    for name, content in cases.items():
        folder = tmp_path / name.replace(".", "-")
        folder.mkdir()
        (folder / "good.md").write_text("# Fine\n\nA good document.\n")
        (folder / name).write_bytes(content)
        target = folder / name if name.endswith(".exe") else folder
        result = cli(data_dir, "ingest", str(target), "--collection", "essays")
        assert result.returncode == 1, name
        assert result.stderr.startswith("gatehouse: error: "), result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    big = tmp_path / "big"
    big.mkdir()
    (big / "a.md").write_text("# Small\n\nfine\n")
    (big / "b.txt").write_text("word " * 500)
    oversized = cli(
        data_dir,
        "ingest",
        str(big),
        "-c",
        "essays",
        env={"GATEHOUSE_RAG__MAX_DOCUMENT_CHARS": "1000"},
    )
    assert oversized.returncode == 1
    assert "b.txt" in oversized.stderr
    assert "the limit is 1000" in oversized.stderr
    after = orjson.loads(cli(data_dir, "collections", "show", "essays").stdout)["chunks"]
    assert after == before
    unknown = cli(data_dir, "search", "x", "--collection", "nope")
    assert unknown.returncode == 1
    assert "collection 'nope' does not exist" in unknown.stderr
