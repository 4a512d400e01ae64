"""Does ``gatehouse eval rag`` reproduce ``bench/retrieval.py``'s hybrid nDCG@10?

Runs both on one labelled set of ``../shared/data/retrieval`` (default
msmarco) and prints their figures side by side:

1. ``bench/retrieval.py --sets SET``, as it is (its own ingestion into a
   temporary collection, its embedding cache), and its hybrid nDCG@10 row;
2. the command line a user would type: ``gatehouse ingest`` of the corpus
   into a fresh data directory, then ``gatehouse eval rag --mode hybrid
   --top-k 50`` scoring ``ndcg_exp@10`` (the bench's exponential gain
   ``2^rel - 1``) and ``ndcg@10`` (trec_eval's linear gain, the default).

Like for like: the bench scores only the queries of ``queries.jsonl`` that
have a relevant judgment, while ``eval rag`` scores every judged query and
gives 0 to one without a relevant judgment (trec_eval's rule) or missing from
the queries file (it cannot be run). So the CLI gets the qrels of the queries
the bench scores (the count left out is printed: msmarco has none; arcd's
qrels judge 702 queries, its queries file holds 50).
Exit 1 when the two exponential-gain figures differ at 3 decimals.

    .venv/bin/python bench/eval_rag_agreement.py [--set msmarco] [--data ../shared/data/retrieval]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gatehouse.evals.formats import read_qrels, read_queries

sys.path.insert(0, str(Path(__file__).resolve().parent))
from structured_output import cpu_name

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH.parents[1] / "shared" / "data" / "retrieval"


def bench_hybrid(name: str, data: Path) -> tuple[float, float]:
    """bench/retrieval.py's hybrid nDCG@10 on ``name`` (3 decimals, as it prints) and seconds."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(BENCH / "retrieval.py"), "--data", str(data), "--sets", name],
        capture_output=True,
        text=True,
        check=True,
    )
    row = re.search(rf"^\| {re.escape(name)} \| hybrid \| ([0-9.]+) \|", result.stdout, re.M)
    if row is None:
        raise SystemExit(
            f"no hybrid row for {name} in bench/retrieval.py's output:\n{result.stdout}"
        )
    return float(row[1]), time.monotonic() - started


def cli_figures(root: Path, workdir: Path) -> tuple[dict[str, float], int, float]:
    """``gatehouse ingest`` + ``gatehouse eval rag``: the scores, queries dropped, seconds."""
    qrels = read_qrels(root / "qrels" / "test.tsv")
    queries = read_queries(root / "queries.jsonl")
    kept = {
        q: judged
        for q, judged in qrels.items()
        if q in queries and any(r > 0 for r in judged.values())
    }
    filtered = workdir / "qrels.tsv"
    filtered.write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t{r}\n" for q, judged in kept.items() for d, r in judged.items())
    )
    gatehouse = [sys.executable, "-m", "gatehouse", "--data-dir", str(workdir / "data")]
    started = time.monotonic()
    subprocess.run(
        [*gatehouse, "ingest", str(root / "corpus.jsonl"), "-c", "agreement"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    scored = subprocess.run(
        [
            *gatehouse,
            "eval",
            "rag",
            "-c",
            "agreement",
            "--queries",
            str(root / "queries.jsonl"),
            "--qrels",
            str(filtered),
            "--mode",
            "hybrid",
            "--top-k",
            "50",
            "--metrics",
            "ndcg_exp@10,ndcg@10",
            "--json",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(scored.stdout), len(qrels) - len(kept), time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="msmarco")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    root = args.data / args.set
    if not (root / "corpus.jsonl").is_file():
        print(f"# {args.set}: MISSING (no {root}); nothing compared")
        return 0
    bench, bench_s = bench_hybrid(args.set, args.data)
    with tempfile.TemporaryDirectory() as tmp:
        cli, dropped, cli_s = cli_figures(root, Path(tmp))
    agree = f"{cli['ndcg_exp@10']:.3f}" == f"{bench:.3f}"
    print(f"# {cpu_name()}; Python {platform.python_version()}; set {args.set}")
    print(
        "# judged queries the bench does not score (no relevant judgment, or not in "
        f"queries.jsonl), left out for the CLI: {dropped}"
    )
    print()
    print("| figure | gain | hybrid nDCG@10 | seconds |")
    print("| --- | --- | --- | --- |")
    print(f"| bench/retrieval.py | 2^rel - 1 | {bench:.3f} | {bench_s:.0f} |")
    print(
        f"| gatehouse eval rag --metrics ndcg_exp@10 | 2^rel - 1 | {cli['ndcg_exp@10']:.4f} "
        f"| {cli_s:.0f} (ingest + eval) |"
    )
    print(f"| gatehouse eval rag --metrics ndcg@10 | linear | {cli['ndcg@10']:.4f} | |")
    print()
    print(f"agree to 3 decimals: {'yes' if agree else 'NO'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
