"""``gatehouse eval retrieval | rag | answers | capabilities | compare`` (docs/evals.md).

``retrieval`` scores a TREC run file; ``rag`` makes the run itself, by
searching a collection in-process with every judged query. Both print the
metrics as a table, or with ``--json`` as one JSON object of metric name to
value. A malformed input line is a one-line error naming the file and line
(exit 1), raised as a GatehouseError for the main command to print.

``answers`` and ``capabilities`` write a JSON run and an HTML report (see
:mod:`gatehouse.cli.eval_runs`); ``compare`` reads two such runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

import gatehouse.cli.eval_runs as eval_runs
from gatehouse.cli.arguments import positive_int
from gatehouse.core.config import Settings
from gatehouse.evals import (
    DEFAULT_METRICS,
    Metric,
    Qrels,
    Ranking,
    evaluate,
    rank,
    read_qrels,
    read_queries,
    read_run,
    search_ranking,
    write_run,
)
from gatehouse.rag import RagEngine

MODES = ["hybrid", "dense", "keyword", "rrf"]


def add_parsers(commands: Any) -> None:
    """Register ``eval`` and its subcommands on the main parser's subparsers."""
    evals = commands.add_parser(
        "eval", help="evaluate retrieval, RAG answers and model capabilities"
    )
    kinds = evals.add_subparsers(dest="eval_command", required=True)

    retrieval = kinds.add_parser("retrieval", help="score a TREC run file against qrels")
    retrieval.add_argument("--qrels", type=Path, required=True, help="TREC qrels or BEIR TSV")
    retrieval.add_argument("--run", type=Path, required=True, help="TREC run file")
    _add_output_options(retrieval)

    rag = kinds.add_parser("rag", help="search a collection with judged queries and score it")
    rag.add_argument("--collection", "-c", required=True)
    rag.add_argument("--queries", type=Path, required=True, help="BEIR queries.jsonl")
    rag.add_argument("--qrels", type=Path, required=True, help="TREC qrels or BEIR TSV")
    rag.add_argument("--mode", choices=MODES, default="hybrid")
    rag.add_argument(
        "--top-k", type=positive_int, default=100, help="chunks per query (default 100)"
    )
    rag.add_argument("--save-run", type=Path, help="also write the run as a TREC run file")
    _add_output_options(rag)
    eval_runs.add_parsers(kinds)


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--metrics",
        type=_metrics,
        default=DEFAULT_METRICS,
        help="comma-separated, e.g. ndcg@10,recall@50 (default: "
        + ",".join(str(m) for m in DEFAULT_METRICS)
        + ")",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``eval`` subcommand; errors propagate as GatehouseError to the caller."""
    if args.eval_command in eval_runs.COMMANDS:
        return eval_runs.run(settings, args)
    if args.eval_command == "retrieval":
        qrels = read_qrels(args.qrels)
        ranking = rank(read_run(args.run))
        _report(qrels, ranking, args)
        return 0
    from gatehouse.cli.rag import build_engine

    return asyncio.run(evaluate_collection(build_engine(settings), args))


async def evaluate_collection(engine: RagEngine, args: argparse.Namespace) -> int:
    """``eval rag`` against ``engine``: search every judged query, then report."""
    qrels = read_qrels(args.qrels)
    queries = read_queries(args.queries)
    engine.collection(args.collection)  # a missing collection fails before any search
    if args.save_run:  # a path that cannot be written fails before any search, too
        args.save_run.parent.mkdir(parents=True, exist_ok=True)
        args.save_run.touch()
    judged = {query: queries[query] for query in qrels if query in queries}
    if missing := len(qrels) - len(judged):
        print(
            f"{missing} of {len(qrels)} judged queries are not in {args.queries}: they score 0",
            file=sys.stderr,
        )
    ranking = await search_ranking(
        engine, args.collection, judged, top_k=args.top_k, mode=args.mode
    )
    if args.save_run:
        write_run(args.save_run, ranking, tag=f"gatehouse-{args.mode}")
    _report(qrels, ranking, args)
    return 0


def _report(qrels: Qrels, ranking: Ranking, args: argparse.Namespace) -> None:
    scores = evaluate(qrels, ranking, args.metrics)
    if args.json:
        print(orjson.dumps(scores).decode())
        return
    width = max(len(name) for name in scores)
    print(f"{'metric':<{width}}  value")
    for name, value in scores.items():
        print(f"{name:<{width}}  {value:.4f}")
    print(_coverage(qrels, ranking))


def _coverage(qrels: Qrels, ranking: Mapping[str, object]) -> str:
    absent = sum(1 for query in qrels if query not in ranking)
    line = f"{len(qrels)} judged queries"
    return line + (f", {absent} absent from the run (scored 0)" if absent else "")


def _metrics(text: str) -> tuple[Metric, ...]:
    try:
        chosen = tuple(Metric.parse(name) for name in text.split(",") if name.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not chosen:
        raise argparse.ArgumentTypeError("name at least one metric")
    return tuple(dict.fromkeys(chosen))
