"""The metrics equal trec_eval's (through pytrec_eval) to 1e-9 on random runs, both qrels formats.

The random runs have what real ones have: graded and zero judgments, unjudged
documents, tied scores, more than 100 documents for some queries, judged
queries missing from the run, queries with nothing relevant, and run queries
that nobody judged.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import pytrec_eval

from gatehouse.evals import Metric, evaluate, rank, read_qrels, read_run

# Our metric -> the trec_eval measure (pytrec_eval's name for it).
MEASURES = {
    "ndcg@10": "ndcg_cut_10",
    "ndcg@100": "ndcg_cut_100",
    "recall@10": "recall_10",
    "recall@100": "recall_100",
    "precision@10": "P_10",
    "map@100": "map_cut_100",
    "map@5": "map_cut_5",
}
REQUEST = {"ndcg_cut.10,100", "recall.10,100", "P.10", "map_cut.5,100", "recip_rank"}


def random_set(seed: int) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    rng = random.Random(seed)
    docs = [f"D{i}" for i in range(160)] + [f"d{i}" for i in range(40)]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(40):
        query = f"q{q}"
        judged = rng.sample(docs, rng.randint(1, 25))
        top = 0 if q % 13 == 0 else 3  # some queries have nothing relevant
        qrels[query] = {doc: rng.randint(0, top) for doc in judged}
        if q % 7 == 3:
            continue  # judged, never run
        retrieved = rng.sample(docs, rng.randint(0, 150))
        # Scores on a coarse grid, so many tie.
        run[query] = {doc: round(rng.uniform(-2, 2), 1) for doc in retrieved}
    run["unjudged"] = {"D1": 1.0}
    return qrels, run


def write_trec_qrels(path: Path, qrels: dict[str, dict[str, int]]) -> None:
    path.write_text(
        "".join(f"{q} 0 {d} {r}\n" for q, judged in qrels.items() for d, r in judged.items())
    )


def write_beir_qrels(path: Path, qrels: dict[str, dict[str, int]]) -> None:
    lines = [f"{q}\t{d}\t{r}\n" for q, judged in qrels.items() for d, r in judged.items()]
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(lines))


def write_run(path: Path, run: dict[str, dict[str, float]]) -> None:
    # Listed in a shuffled order with a meaningless rank column: only the score counts.
    rows = [(q, d, s) for q, docs in run.items() for d, s in docs.items()]
    random.Random(0).shuffle(rows)
    path.write_text("".join(f"{q} Q0 {d} 0 {s} rnd\n" for q, d, s in rows))


def trec_eval_means(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]], measures: set[str]
) -> dict[str, float]:
    """pytrec_eval's per-query figures, averaged over every judged query (trec_eval -c)."""
    per_query = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
    names = {name for row in per_query.values() for name in row}
    return {
        name: sum(per_query.get(q, {}).get(name, 0.0) for q in qrels) / len(qrels) for name in names
    }


@pytest.mark.parametrize("qrels_format", ["trec", "beir"])
@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_trec_eval(tmp_path: Path, seed: int, qrels_format: str) -> None:
    qrels, run = random_set(seed)
    qrels_path, run_path = tmp_path / "qrels", tmp_path / "run"
    (write_trec_qrels if qrels_format == "trec" else write_beir_qrels)(qrels_path, qrels)
    write_run(run_path, run)
    read = read_qrels(qrels_path)
    assert read == qrels
    ranking = rank(read_run(run_path))
    ours = evaluate(read, ranking, [Metric.parse(name) for name in [*MEASURES, "mrr@1000"]])
    theirs = trec_eval_means(qrels, run, REQUEST)
    for name, measure in MEASURES.items():
        assert ours[name] == pytest.approx(theirs[measure], abs=1e-9), name
    # trec_eval's recip_rank has no cut-off: with none reached the two agree, ties included ...
    assert ours["mrr@1000"] == pytest.approx(theirs["recip_rank"], abs=1e-9)
    # ... and MRR@10 is recip_rank over each query's first 10 in trec_eval's order.
    first_10 = {
        q: dict(sorted(docs.items(), key=lambda item: (item[1], item[0]), reverse=True)[:10])
        for q, docs in run.items()
    }
    mrr_10 = evaluate(read, ranking, [Metric("mrr", 10)])["mrr@10"]
    assert mrr_10 == pytest.approx(
        trec_eval_means(qrels, first_10, {"recip_rank"})["recip_rank"], abs=1e-9
    )
