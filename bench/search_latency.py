"""RAG search latency over HTTP, and where the time of one search goes.

Starts a real ``gatehouse serve`` process (the default configuration, with the
response cache off so that every search embeds its query: repeated benchmark
queries would otherwise be answered from the cache, and users' queries are
mostly new), creates a collection and ingests the first ``--docs`` passages of
msmarco over HTTP, then sends the 50 msmarco queries ``--repeats`` times each,
one at a time, over one keep-alive ``httpx`` connection, in each mode
(hybrid, the default; dense; keyword). It prints p50/p90/p99 per mode.

Then, with the server stopped, the same collection is opened in this process
(an in-process gateway with ``local/minilm``, as the server builds it) and one
hybrid search is taken apart: the calls the search route makes, made one by
one in the same order and timed: the query embedding through the gateway's
pipeline (and, beside it, the embedding model run alone), query analysis, the
collection's lock and refresh check, keyword search, vector search, the
whole documents' keyword scores and the fusion of the first pass, the
feedback terms taken from its best hits, keyword search again with them, the
document scores and fusion of the second pass, fetching the hit rows, and
building and serialising the response. Their sum is printed beside
``engine.search`` timed whole, and every query's response from the pieces is
checked to be byte for byte the one ``engine.search`` gives.

Ingestion of 5,000 passages takes a few minutes on 2 cores: ``--data-dir``
keeps the server's data folder and reuses its collection on the next run.
``--save-hits`` writes every query's hits (chunk id and score) per mode as
JSON, to check that a change keeps the results.

Data: ``../shared/data/retrieval/msmarco`` beside the repository (``--data``
for elsewhere); the bench stops at once, naming the missing files, when they
are not there.

Run:  .venv/bin/python bench/search_latency.py [--data-dir /tmp/gh-search] [--repeats 5]
Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retrieval" / "msmarco"
COLLECTION = "msmarco"
MODES = ("hybrid", "dense", "keyword")
C = "/v1/rag/collections"
# Every search embeds its query: the response cache would answer repeats.
SERVER_ENV = {"GATEHOUSE_CACHE__ENABLED": "false", "HF_HUB_OFFLINE": "1"}


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next(
        (line.split(":", 1)[1].strip() for line in info.splitlines() if "model name" in line),
        "unknown CPU",
    )
    vnni = "with" if "avx512_vnni" in info or "avx_vnni" in info else "without"
    return f"{name}, {os.cpu_count()} cores, {vnni} VNNI"


def load() -> str:
    """The 1/5/15-minute load averages: how busy the shared machine was."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # Split on newlines only: passages contain U+2028, which splitlines() breaks on.
    return [orjson.loads(line) for line in path.read_bytes().split(b"\n") if line.strip()]


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, round(p * (len(ordered) - 1)))]

    return at(0.5), at(0.9), at(0.99)


# -- the server --


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def server(data_dir: Path, env: dict[str, str] = SERVER_ENV) -> Iterator[str]:
    """A ``gatehouse serve`` on a free port with ``data_dir``, its environment plus ``env``."""
    port = free_port()
    log = data_dir.parent / f"search-latency-server-{port}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gatehouse",
            "--data-dir",
            str(data_dir),
            "serve",
            "--port",
            str(port),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise SystemExit(f"server exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"server did not become healthy:\n{log.read_text()}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def ensure_collection(client: httpx.Client, corpus: list[dict[str, Any]]) -> None:
    found = client.get(f"{C}/{COLLECTION}")
    if found.status_code == 200 and found.json()["documents"] == len(corpus):
        print(f"reusing collection '{COLLECTION}' ({len(corpus)} documents)")
        return
    if found.status_code == 200:
        client.delete(f"{C}/{COLLECTION}").raise_for_status()
    client.post(C, json={"name": COLLECTION}).raise_for_status()
    started = time.perf_counter()
    for start in range(0, len(corpus), 250):
        batch = [
            {"id": row["_id"], "text": row["text"], "title": row.get("title") or None}
            for row in corpus[start : start + 250]
        ]
        reply = client.post(f"{C}/{COLLECTION}/documents", json={"documents": batch}, timeout=900)
        reply.raise_for_status()
        done = start + len(batch)
        rate = done / (time.perf_counter() - started)
        print(f"\ringested {done}/{len(corpus)} ({rate:.0f} documents/s)", end="", flush=True)
    print()


def http_latencies(
    base: str, corpus: list[dict[str, Any]], queries: list[str], repeats: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Milliseconds per search, by mode; and every query's hits by mode."""
    latencies: dict[str, list[float]] = {mode: [] for mode in MODES}
    hits: dict[str, Any] = {mode: {} for mode in MODES}
    with httpx.Client(base_url=base, timeout=120) as client:
        ensure_collection(client, corpus)
        url = f"{C}/{COLLECTION}/search"
        for mode in MODES:  # warm-up: load the indexes and the model, fill the caches
            for query in queries[:5]:
                client.post(url, json={"query": query, "mode": mode}).raise_for_status()
        for _ in range(repeats):
            for mode in MODES:
                for query in queries:
                    started = time.perf_counter()
                    reply = client.post(url, json={"query": query, "mode": mode})
                    elapsed = time.perf_counter() - started
                    reply.raise_for_status()
                    latencies[mode].append(elapsed * 1000)
                    hits[mode][query] = [
                        (h["chunk_id"], h["score"]) for h in reply.json()["results"]
                    ]
    return latencies, hits


# -- the pieces, in process --

EMBEDDING = "query embedding, through the gateway"
MODEL = "  of which the model (tokenise + ONNX run)"
ANALYSIS = "query analysis (terms, vocabulary coverage)"
REFRESH = "lock + index refresh check (SQLite)"
KEYWORD = "keyword search, query terms (BM25)"
VECTOR = "vector search (exact)"
DOCUMENTS_1 = "document-level keyword evidence, pass 1"
FUSION_1 = "fusion pass 1 (both scores, z-mix)"
FEEDBACK = "feedback terms (pass 1's best hits)"
KEYWORD_2 = "keyword search, with feedback terms"
DOCUMENTS_2 = "document-level keyword evidence, pass 2"
FUSION_2 = "fusion pass 2"
FETCH = "fetch the hit rows (SQLite)"
RESPONSE = "hits + JSON response (model + serialise)"
SUM = "sum of the pieces above"
WHOLE = "engine.search + JSON, whole"
# The pieces that add up to the whole (the "of which" rows are inside the one above them).
PIECES = (
    EMBEDDING,
    ANALYSIS,
    REFRESH,
    KEYWORD,
    VECTOR,
    DOCUMENTS_1,
    FUSION_1,
    FEEDBACK,
    KEYWORD_2,
    DOCUMENTS_2,
    FUSION_2,
    FETCH,
    RESPONSE,
)


async def breakdown(data_dir: Path, queries: list[str], repeats: int) -> dict[str, list[float]]:
    """Milliseconds per piece of one hybrid search, timed directly.

    The pieces are the calls ``Searcher.retrieve``, ``Collection.search`` and
    ``retrieval.retrieve`` make for a hybrid search, made here one by one in
    the same order (the document-level evidence is timed on its own first;
    the fusion then reuses those scores, as it reuses the keyword search's).
    Every query's hits from the pieces are checked against ``engine.search``'s.
    """
    from starlette.datastructures import Headers

    from gatehouse.core.config import load_settings
    from gatehouse.gateway import CallerClient, build_gateway
    from gatehouse.providers.local.embeddings import MiniLMEmbeddingProvider
    from gatehouse.rag import RagEngine, SearchHit, SearchResponse, fusion
    from gatehouse.rag.blas import one_thread
    from gatehouse.rag.embedder import GatewayEmbedder
    from gatehouse.rag.retrieval import DEPTH, Query, feedback, fuse
    from gatehouse.rag.text import analyze
    from gatehouse.rag.tokenizer import tokenizer_for
    from gatehouse.server.http import to_json

    settings = load_settings(environ={})
    settings.data_dir = data_dir
    settings.cache.enabled = False
    settings.local.chat.enabled = False
    gateway = build_gateway(settings, started_at=int(time.time()))
    await gateway.start()
    assert gateway.governance is not None
    # The caller an HTTP request without credentials gets: metered, like the server's.
    caller = await gateway.governance.authenticator.authenticate(Headers())
    engine = RagEngine(data_dir / "rag", gateway)
    collection = engine.collection(COLLECTION, caller=caller)
    spec = collection.spec
    embedder = GatewayEmbedder(CallerClient(gateway, caller, "rag.search"), spec.embedding_model)
    # The gateway's own local/minilm: a second model would add its own ONNX threads.
    model = gateway.registry.get(spec.embedding_model).group.deployments[0].provider
    assert isinstance(model, MiniLMEmbeddingProvider)
    tokens = tokenizer_for(spec.embedding_model)
    collection.sync()
    rule = fusion.DEFAULT_RULE
    top_k = 10
    depth = max(DEPTH, top_k)
    # The collection's own indexes and lock (private: this bench times them one by one).
    keywords, vectors = collection._keywords, collection._vectors
    assert vectors is not None
    documents = (collection._documents, collection._row_doc)
    document_index, row_doc = documents

    times: dict[str, list[float]] = {}

    def timed(name: str, call: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        value = call()
        times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return value

    async def atimed(name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        started = time.perf_counter()
        value = await call()
        times.setdefault(name, []).append((time.perf_counter() - started) * 1000)
        return value

    def document_evidence(
        name: str,
        weighted: dict[str, float],
        dense: list[tuple[int, float]],
        keyword: list[tuple[int, float]],
    ) -> None:
        """The whole documents' BM25 for the candidates, as ``retrieval.evidence`` asks it."""
        candidates = list(dict.fromkeys([r for r, _ in dense] + [r for r, _ in keyword]))
        keys = [row_doc.get(r, -1) for r in candidates]
        timed(name, lambda: document_index.score_rows(weighted, keys))

    def search_pieces(prepared: Query) -> list[tuple[int, float]]:
        """``retrieval.retrieve``'s hybrid path, step by step (as ``Collection.search`` runs it)."""
        plain = {t: float(n) for t, n in Counter(prepared.terms).items()}
        query_vector = prepared.vector
        assert query_vector is not None
        with one_thread:
            keyword = timed(KEYWORD, lambda: keywords.search_terms(plain, depth, None))
            dense = timed(VECTOR, lambda: vectors.search(query_vector, depth, None))
            document_evidence(DOCUMENTS_1, plain, dense, keyword)
            first = timed(
                FUSION_1,
                lambda: fuse(
                    prepared,
                    dense,
                    keyword,
                    plain,
                    vectors,
                    keywords,
                    rule.feedback_docs,
                    documents,
                    rule,
                ),
            )
            expanded = timed(
                FEEDBACK, lambda: feedback(prepared.terms, [r for r, _ in first], keywords)
            )
            keyword = timed(KEYWORD_2, lambda: keywords.search_terms(expanded, depth, None))
            document_evidence(DOCUMENTS_2, expanded, dense, keyword)
            return timed(  # type: ignore[no-any-return]
                FUSION_2,
                lambda: fuse(
                    prepared, dense, keyword, expanded, vectors, keywords, top_k, documents, rule
                ),
            )

    async def one(query: str) -> None:
        async def embedding() -> Any:
            vectors = await embedder.embed([query])
            mean = vectors.mean(axis=0)  # as Searcher.retrieve (HyDE adds a second text)
            return mean / max(float(np.linalg.norm(mean)), 1e-12)

        vector = await atimed(EMBEDDING, embedding)
        timed(MODEL, lambda: model.encode([query]))

        def analysis() -> Query:
            return Query(
                text=query,
                terms=analyze(query, spec.language),
                vector=vector,
                coverage=tokens.coverage(query),
            )

        prepared = timed(ANALYSIS, analysis)
        with collection._lock:
            store = collection._read_store()
            timed(REFRESH, lambda: collection.refresh(store))
            fused = search_pieces(prepared)
            rows = timed(FETCH, lambda: store.chunks_by_rowid([r for r, _ in fused]))

        def response() -> bytes:
            hits = [
                SearchHit(
                    document_id=rows[r]["document_id"],
                    chunk_id=rows[r]["chunk_id"],
                    text=rows[r]["text"],
                    score=score,
                    metadata=rows[r]["metadata"],
                )
                for r, score in fused
                if r in rows
            ]
            return to_json(SearchResponse(results=hits))

        body = timed(RESPONSE, response)
        times.setdefault(SUM, []).append(sum(times[name][-1] for name in PIECES))

        async def whole() -> bytes:
            hits = await engine.search(COLLECTION, query, top_k=top_k, caller=caller)
            return to_json(SearchResponse(results=hits))

        assert await atimed(WHOLE, whole) == body, f"the pieces found other hits for {query!r}"

    for query in queries[:5]:  # warm-up
        await one(query)
    times.clear()
    for _ in range(repeats):
        for query in queries:
            await one(query)
    await gateway.stop()
    return times


# -- the report --


def table(rows: list[tuple[str, list[float]]], title: str) -> None:
    print(f"\n{title}")
    width = max(len(name) for name, _ in rows)
    print(f"| {'':{width}} | p50 ms | p90 ms | p99 ms |")
    print(f"| {'-' * width} | ------ | ------ | ------ |")
    for name, samples in rows:
        p50, p90, p99 = percentiles(samples)
        print(f"| {name:{width}} | {p50:6.2f} | {p90:6.2f} | {p99:6.2f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the msmarco folder")
    parser.add_argument("--data-dir", type=Path, help="the server's data folder, kept for reuse")
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5, help="passes over the 50 queries")
    parser.add_argument("--save-hits", type=Path, help="write every query's hits as JSON here")
    parser.add_argument("--no-breakdown", action="store_true")
    args = parser.parse_args()

    needed = [args.data / "corpus.jsonl", args.data / "queries.jsonl"]
    missing = [str(path) for path in needed if not path.is_file()]
    if missing:
        print(f"search_latency: data not found: {', '.join(missing)} (see --data)", file=sys.stderr)
        return 2
    corpus = read_jsonl(needed[0])[: args.docs]
    queries = [row["text"] for row in read_jsonl(needed[1])]
    print(f"CPU: {cpu()}; load average {load()}")
    print(f"{len(corpus)} documents, {len(queries)} queries x {args.repeats}, sequential")

    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data_dir or Path(scratch) / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        with server(data_dir) as base:
            latencies, hits = http_latencies(base, corpus, queries, args.repeats)
        table([(mode, latencies[mode]) for mode in MODES], "Search over HTTP, per request")
        if args.save_hits:
            args.save_hits.write_bytes(orjson.dumps(hits, option=orjson.OPT_INDENT_2))
        if not args.no_breakdown:
            pieces = asyncio.run(breakdown(data_dir, queries, args.repeats))
            table(list(pieces.items()), "One hybrid search in process, piece by piece")
            around = percentiles(latencies["hybrid"])[0] - percentiles(pieces[WHOLE])[0]
            print(
                f"\nhybrid over HTTP beyond engine.search in process (p50 - p50): {around:.2f} ms"
            )
    print(f"load average at the end {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
