"""Retrieval quality of the RAG engine on the labelled sets in ``../shared/data/retrieval``.

Ingests each corpus into a fresh embedded collection with the DEFAULT
settings (the real chunking, analyzers and indexes), then runs every query in
each mode and prints nDCG@10 (gain 2^rel - 1, ideal from all judged
documents, queries without a relevant document skipped), recall@10 and
MRR@10. Chunks are ranked, documents are scored by their best chunk.

Embeddings go through the gateway (``local/minilm``) and are cached on disk
by text hash (per embedding backend) under ``~/.cache/gatehouse-bench`` so
reruns take seconds.

    .venv/bin/python bench/retrieval.py [--data ../shared/data/retrieval] [--sets msmarco arcd]
        [--backend onnx-int8|onnx|torch]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gatehouse.core.config import load_settings
from gatehouse.evals.formats import read_qrels
from gatehouse.gateway import build_gateway
from gatehouse.providers.local.onnx_export import EXPORT_FORMAT
from gatehouse.rag.embedder import GatewayEmbedder
from gatehouse.rag.engine import RagEngine
from gatehouse.rag.models import CollectionSpec, DocumentIn

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retrieval"
CACHE = Path.home() / ".cache" / "gatehouse-bench"
# The README's baselines (bm25s with English stemming; sentence-transformers fp32).
README_BASELINES = {"msmarco": (0.620, 0.704), "arcd": (0.747, 0.055)}
MODES = ["keyword", "dense", "rrf", "hybrid"]


class CachedEmbedder:
    """An embedder that remembers vectors by text hash in a SQLite file."""

    def __init__(self, inner: GatewayEmbedder, path: Path) -> None:
        self.inner = inner
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS v (h TEXT PRIMARY KEY, vec BLOB)")

    async def embed(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found: dict[str, np.ndarray[Any, Any]] = {}
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            for h, blob in self.db.execute(f"SELECT h, vec FROM v WHERE h IN ({marks})", part):
                found[h] = np.frombuffer(blob, dtype=np.float32)
        missing = [i for i, k in enumerate(keys) if k not in found]
        if missing:
            vectors = await self.inner.embed([texts[i] for i in missing])
            for i, vector in zip(missing, vectors, strict=True):
                found[keys[i]] = vector
                self.db.execute(
                    "INSERT OR REPLACE INTO v VALUES (?, ?)", (keys[i], vector.tobytes())
                )
            self.db.commit()
        return np.vstack([found[k] for k in keys]).astype(np.float32)


def read_set(
    root: Path,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, dict[str, int]]]:
    corpus = [orjson.loads(line) for line in (root / "corpus.jsonl").read_bytes().splitlines()]
    queries = [orjson.loads(line) for line in (root / "queries.jsonl").read_bytes().splitlines()]
    # Not every copy of a set has the BEIR header line: the project's reader
    # tells (skipping the first line blindly lost msmarco's first judgment).
    return corpus, queries, read_qrels(root / "qrels" / "test.tsv")


def ndcg_at_10(ranked: Sequence[str], judged: dict[str, int]) -> float:
    dcg = sum((2 ** judged.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranked[:10]))
    ideal = sorted(judged.values(), reverse=True)[:10]
    idcg = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at_10(ranked: Sequence[str], judged: dict[str, int]) -> float:
    relevant = {d for d, r in judged.items() if r > 0}
    return len(relevant & set(ranked[:10])) / len(relevant)


def mrr_at_10(ranked: Sequence[str], judged: dict[str, int]) -> float:
    for i, d in enumerate(ranked[:10]):
        if judged.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


async def run_set(
    name: str, root: Path, embedder: CachedEmbedder, workdir: Path
) -> dict[str, tuple[float, float, float, float]]:
    corpus, queries, qrels = read_set(root)
    engine = RagEngine(workdir / name, None, embedder=embedder)
    engine.create_collection(CollectionSpec(name=name))
    started = time.perf_counter()
    for start in range(0, len(corpus), 256):
        batch = [
            DocumentIn(id=row["_id"], text=row["text"], title=row.get("title") or None)
            for row in corpus[start : start + 256]
        ]
        await engine.add_documents(name, batch)
    ingest_s = time.perf_counter() - started
    results: dict[str, tuple[float, float, float, float]] = {}
    for mode in MODES:
        scores: list[tuple[float, float, float]] = []
        latencies = []
        for query in queries:
            judged = qrels.get(query["_id"], {})
            if not any(r > 0 for r in judged.values()):
                continue
            t0 = time.perf_counter()
            hits = await engine.search(name, query["text"], top_k=50, mode=mode)  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - t0)
            ranked = list(dict.fromkeys(hit.document_id for hit in hits))
            scores.append(
                (
                    ndcg_at_10(ranked, judged),
                    recall_at_10(ranked, judged),
                    mrr_at_10(ranked, judged),
                )
            )
        mean = np.mean(scores, axis=0)
        results[mode] = (
            float(mean[0]),
            float(mean[1]),
            float(mean[2]),
            float(np.median(latencies) * 1000),
        )
    print(f"# {name}: {len(corpus)} documents ingested in {ingest_s:.1f}s", file=sys.stderr)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", nargs="+", default=["msmarco", "arcd"])
    parser.add_argument(
        "--backend",
        choices=["onnx-int8", "onnx", "torch"],
        help="local/minilm's engine (default: the configuration's default)",
    )
    args = parser.parse_args()
    settings = load_settings(environ={})
    settings.local.chat.enabled = False
    if args.backend:
        settings.local.embeddings.backend = args.backend
    gateway = build_gateway(settings, started_at=int(time.time()))
    # One cache per backend and export recipe: int8 and fp32 vectors of a text differ.
    backend = settings.local.embeddings.backend
    embedder = CachedEmbedder(
        GatewayEmbedder(gateway, "local/minilm"),
        CACHE / f"embeddings-local-minilm-{backend}-format{EXPORT_FORMAT}.sqlite",
    )
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets:
            results = await run_set(name, args.data / name, embedder, Path(tmp))
            table.append((name, results))
    print("| set | mode | nDCG@10 | recall@10 | MRR@10 | p50 search ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, results in table:
        for mode, (ndcg, recall, mrr, p50) in results.items():
            print(f"| {name} | {mode} | {ndcg:.3f} | {recall:.3f} | {mrr:.3f} | {p50:.1f} |")
    print()
    print("| set | hybrid | target (README best + 0.02) | vs target | best single here | vs it |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, results in table:
        here = max(results["keyword"][0], results["dense"][0])
        target = max(README_BASELINES.get(name, (0.0, 0.0))) + 0.02
        hybrid = results["hybrid"][0]
        print(
            f"| {name} | {hybrid:.3f} | {target:.3f} | {hybrid - target:+.3f} "
            f"| {here:.3f} | {hybrid - here:+.3f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
