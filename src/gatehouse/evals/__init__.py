"""Evaluation: retrieval metrics, RAG answer metrics, capability tests, reports.

- :mod:`~gatehouse.evals.metrics`: nDCG@k, recall@k, precision@k, MRR@k and
  MAP@k, trec_eval's definitions, pure functions;
- :mod:`~gatehouse.evals.formats`: qrels (TREC, BEIR TSV), TREC runs, BEIR
  queries and answer sets, read with errors that name the file and line;
- :mod:`~gatehouse.evals.collection`: labelled queries through the RAG engine;
- :mod:`~gatehouse.evals.answers`: exact match, token F1, citation validity;
- :mod:`~gatehouse.evals.rag_metrics` (prompts, readers, scores) and
  :mod:`~gatehouse.evals.judge` (calls, retries): the judged RAG metrics;
  :mod:`~gatehouse.evals.parsing` reads untidy judge output;
- :mod:`~gatehouse.evals.answering`: ``eval answers``, a collection's answers scored;
- :mod:`~gatehouse.evals.capabilities`, :mod:`~gatehouse.evals.checks` and
  :mod:`~gatehouse.evals.sandbox`: capability suites with checkable answers;
- :mod:`~gatehouse.evals.results`, :mod:`~gatehouse.evals.report` and
  :mod:`~gatehouse.evals.compare`: a run as JSON, as HTML, and two runs compared;
- :mod:`~gatehouse.evals.remote`: a gatehouse server as the gateway, over HTTP.

The CLI is ``gatehouse eval retrieval | rag | answers | capabilities | compare``
(docs/evals.md).
"""

from gatehouse.evals.answering import (
    ANSWER_METRICS,
    DETERMINISTIC_METRICS,
    AnswerSettings,
    AnswerSource,
    EngineSource,
    evaluate_answers,
)
from gatehouse.evals.answers import check_citations, exact_match, normalize_answer, token_f1
from gatehouse.evals.capabilities import SUITES, CapabilityItem, run_capabilities
from gatehouse.evals.collection import search_ranking
from gatehouse.evals.compare import Comparison, compare
from gatehouse.evals.formats import (
    LabelledQuestion,
    read_answer_set,
    read_qrels,
    read_queries,
    read_run,
    write_run,
)
from gatehouse.evals.judge import ChatClient, Judge, JudgeUnavailable
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
from gatehouse.evals.rag_metrics import JUDGE_METRICS
from gatehouse.evals.remote import RemoteGateway
from gatehouse.evals.report import render as render_report
from gatehouse.evals.results import EvalRun, ItemResult, MetricSummary, Score

__all__ = [
    "ANSWER_METRICS",
    "DEFAULT_METRICS",
    "DETERMINISTIC_METRICS",
    "JUDGE_METRICS",
    "SUITES",
    "AnswerSettings",
    "AnswerSource",
    "CapabilityItem",
    "ChatClient",
    "Comparison",
    "EngineSource",
    "EvalRun",
    "ItemResult",
    "Judge",
    "JudgeUnavailable",
    "LabelledQuestion",
    "Metric",
    "MetricSummary",
    "Qrels",
    "Ranking",
    "RemoteGateway",
    "Score",
    "Scores",
    "average_precision",
    "check_citations",
    "compare",
    "evaluate",
    "evaluate_answers",
    "exact_match",
    "ndcg",
    "normalize_answer",
    "per_query",
    "precision",
    "rank",
    "read_answer_set",
    "read_qrels",
    "read_queries",
    "read_run",
    "recall",
    "reciprocal_rank",
    "render_report",
    "run_capabilities",
    "search_ranking",
    "token_f1",
    "write_run",
]
