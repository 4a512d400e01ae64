"""Query latency and recall of the embedded vector index against a Chroma server.

Same synthetic 384-d vectors (a mixture of Gaussian clusters, normalised: it
has the clumpy structure of real sentence embeddings, unlike uniform noise)
go into gatehouse's embedded index (HNSW above the threshold) and into a
Chroma server started here (``chroma run``, from ``.venv-chroma``, created
by ``make chroma``). Search only: query vectors are given, nothing is
embedded. Recall@10 is against exact search on the same vectors.

The embedded index saves its HNSW graph (as a collection does, under a
temporary folder here); a second index then opens it the way a restarted
process would (``load``: checks, checksums, reconciliation with the rows) and
is timed and queried again: the "reopened" row, against building from scratch.

    .venv/bin/python bench/vector_scale.py --sizes 100000 [1000000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from gatehouse.rag import graph_file
from gatehouse.rag.vector import EmbeddedVectorIndex

ROOT = Path(__file__).resolve().parents[1]
CHROMA = ROOT / ".venv-chroma" / "bin" / "chroma"
DIM = 384


def vectors(n: int, seed: int, centers: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(centers), n)
    rows = centers[picks] + rng.normal(scale=0.6, size=(n, DIM)).astype(np.float32)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Chroma:
    """A real ``chroma run`` server and a minimal v2 HTTP client for it."""

    def __init__(self, path: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(path), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/api/v2", timeout=600)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.http.get("/heartbeat").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        base = "/tenants/default_tenant/databases/default_database/collections"
        created = self.http.post(
            base,
            json={"name": "bench", "configuration": {"hnsw": {"space": "ip"}}},
        )
        created.raise_for_status()
        self.collection = f"{base}/{created.json()['id']}"

    def add(self, data: np.ndarray[Any, Any]) -> None:
        for start in range(0, len(data), 5000):
            part = data[start : start + 5000]
            response = self.http.post(
                f"{self.collection}/add",
                json={
                    "ids": [str(start + i) for i in range(len(part))],
                    "embeddings": part.tolist(),
                },
            )
            response.raise_for_status()

    def query(self, vector: np.ndarray[Any, Any], k: int) -> list[int]:
        response = self.http.post(
            f"{self.collection}/query",
            json={"query_embeddings": [vector.tolist()], "n_results": k, "include": []},
        )
        response.raise_for_status()
        return [int(i) for i in response.json()["ids"][0]]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure(
    search: Any, queries: np.ndarray[Any, Any], truth: list[set[int]]
) -> tuple[float, float, float]:
    for query in queries[:20]:
        search(query)  # warm-up
    times, recall = [], []
    for query, exact in zip(queries, truth, strict=True):
        t0 = time.perf_counter()
        found = search(query)
        times.append((time.perf_counter() - t0) * 1000)
        recall.append(len(set(found) & exact) / 10)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], float(np.mean(recall))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--no-chroma", action="store_true")
    parser.add_argument(
        "--data",
        choices=["clustered", "uniform"],
        default="clustered",
        help="uniform: isotropic noise, the hardest case for any graph index",
    )
    args = parser.parse_args()
    centers = np.random.default_rng(0).normal(size=(2000, DIM)).astype(np.float32)
    if args.data == "uniform":
        centers = np.zeros((1, DIM), dtype=np.float32)
    queries = vectors(args.queries, 99, centers)
    rows = []
    saves: list[float] = []
    save = graph_file.save

    def timed_save(*a: Any, **kw: Any) -> None:
        t0 = time.perf_counter()
        save(*a, **kw)
        saves.append(time.perf_counter() - t0)

    graph_file.save = timed_save  # type: ignore[assignment]
    notes = []
    for n in args.sizes:
        data = vectors(n, 1, centers)
        with tempfile.TemporaryDirectory() as graph_dir:
            index = EmbeddedVectorIndex(DIM, ann_threshold=20_000, graph_dir=Path(graph_dir))
            saves.clear()
            t0 = time.perf_counter()
            index.add(list(range(n)), data)
            index.build()
            build = time.perf_counter() - t0 - sum(saves)
            saved = sum(saves)
            size = sum(p.stat().st_size for p in Path(graph_dir).iterdir()) / 2**20
            truth = [{r for r, _ in index.search(q, 10, exact=True)} for q in queries]
            exact = measure(
                lambda q, index=index: [r for r, _ in index.search(q, 10, exact=True)],
                queries,
                truth,
            )
            ours = measure(
                lambda q, index=index: [r for r, _ in index.search(q, 10)], queries, truth
            )
            del index
            reopened = EmbeddedVectorIndex(DIM, ann_threshold=20_000, graph_dir=Path(graph_dir))
            t0 = time.perf_counter()
            assert reopened.load(list(range(n)), data), "the saved graph was not used"
            load = time.perf_counter() - t0
            again = measure(
                lambda q, index=reopened: [r for r, _ in index.search(q, 10)], queries, truth
            )
            del reopened
        rows.append((n, "gatehouse exact (numpy)", 0.0, *exact))
        rows.append((n, "gatehouse HNSW (embedded), built", build, *ours))
        rows.append((n, "gatehouse HNSW (embedded), reopened from the saved graph", load, *again))
        notes.append(
            f"{n:,} chunks: build {build:.1f} s, save {saved:.1f} s ({size:.0f} MiB), "
            f"reopen (load + checks) {load:.1f} s: {build / load:.0f}x faster than building"
        )
        if not args.no_chroma:
            with tempfile.TemporaryDirectory() as tmp:
                chroma = Chroma(Path(tmp))
                try:
                    t0 = time.perf_counter()
                    chroma.add(data)
                    load = time.perf_counter() - t0
                    theirs = measure(lambda q, chroma=chroma: chroma.query(q, 10), queries, truth)
                finally:
                    chroma.close()
            rows.append((n, "Chroma server (HTTP)", load, *theirs))
    print("| chunks | index | build/load s | p50 ms | p99 ms | recall@10 vs exact |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n, name, build, p50, p99, recall in rows:
        print(f"| {n:,} | {name} | {build:.1f} | {p50:.2f} | {p99:.2f} | {recall:.3f} |")
    print()
    for note in notes:
        print(note)


if __name__ == "__main__":
    main()
