"""Evaluation: retrieval metrics from qrels, and evaluating a RAG collection with them.

- :mod:`~gatehouse.evals.metrics`: nDCG@k, recall@k, precision@k, MRR@k and
  MAP@k, trec_eval's definitions, pure functions;
- :mod:`~gatehouse.evals.formats`: qrels (TREC, BEIR TSV), TREC runs and BEIR
  queries, read with errors that name the file and line;
- :mod:`~gatehouse.evals.collection`: labelled queries through the RAG engine.

The CLI is ``gatehouse eval retrieval`` and ``gatehouse eval rag`` (docs/evals.md).
"""

from gatehouse.evals.collection import search_ranking
from gatehouse.evals.formats import read_qrels, read_queries, read_run, write_run
from gatehouse.evals.metrics import (
    DEFAULT_METRICS,
    Metric,
    Qrels,
    Ranking,
    Scores,
    average_precision,
    evaluate,
    ndcg,
    per_query,
    precision,
    rank,
    recall,
    reciprocal_rank,
)

__all__ = [
    "DEFAULT_METRICS",
    "Metric",
    "Qrels",
    "Ranking",
    "Scores",
    "average_precision",
    "evaluate",
    "ndcg",
    "per_query",
    "precision",
    "rank",
    "read_qrels",
    "read_queries",
    "read_run",
    "recall",
    "reciprocal_rank",
    "search_ranking",
    "write_run",
]
