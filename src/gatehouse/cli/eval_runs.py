"""``gatehouse eval answers | capabilities | compare``: runs that write a JSON and an HTML report.

The model calls go through a gateway as the caller: in process (the local
CLI caller, like ``gatehouse ask``), or with ``--url`` and ``--api-key`` to a
gatehouse server, as that key, metered and budgeted like any of its calls.

Each run writes ``PREFIX.json`` and ``PREFIX.html`` (``--out PREFIX``, by
default ``eval-runs/<kind>-<UTC time>``), prints a summary table (or with
``--json`` one JSON object: the summary and the two paths) and exits 0. An
input error is one line on stderr and exit 1; a usage error (unknown metric
or suite, judged metrics without ``--judge``) exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gatehouse.cli.arguments import non_negative_int, positive_int
from gatehouse.core.config import Settings
from gatehouse.core.errors import ValidationFailedError
from gatehouse.core.principal import LOCAL
from gatehouse.evals.answering import (
    ANSWER_METRICS,
    DETERMINISTIC_METRICS,
    AnswerSettings,
    AnswerSource,
    EngineSource,
    evaluate_answers,
)
from gatehouse.evals.capabilities import SUITES, CapabilityItem, run_capabilities, select
from gatehouse.evals.compare import compare, render_text
from gatehouse.evals.formats import read_answer_set
from gatehouse.evals.judge import ChatClient, Judge
from gatehouse.evals.rag_metrics import JUDGE_METRICS
from gatehouse.evals.remote import RemoteGateway
from gatehouse.evals.report import write_report
from gatehouse.evals.results import EvalRun, ItemResult, read_run, write_run

COMMANDS = ("answers", "capabilities", "compare")
EXIT_USAGE = 2


def add_parsers(kinds: Any) -> None:
    """Register ``answers``, ``capabilities`` and ``compare`` under ``eval``."""
    answers = kinds.add_parser(
        "answers", help="answer labelled questions from a collection and score the answers"
    )
    answers.add_argument("--collection", "-c", required=True)
    answers.add_argument(
        "--dataset", type=Path, required=True, help="JSONL: {id, question, reference}"
    )
    answers.add_argument("--judge", help="model that judges the answers (for the judged metrics)")
    answers.add_argument(
        "--metrics",
        help="comma-separated (default: "
        f"{','.join(DETERMINISTIC_METRICS)}, plus {','.join(JUDGE_METRICS)} with --judge)",
    )
    answers.add_argument("--model", help="chat model that answers (default: rag.answer_model)")
    answers.add_argument("--top-k", type=positive_int, help="chunks retrieved per question")
    answers.add_argument("--max-tokens", type=positive_int, help="answer token limit")
    answers.add_argument(
        "--judge-retries", type=non_negative_int, default=2, help="further tries per judgment (2)"
    )
    answers.add_argument(
        "--judge-max-tokens", type=positive_int, default=512, help="judge reply token limit (512)"
    )
    answers.add_argument(
        "--judge-json",
        action="store_true",
        help="ask the judge for response_format json_object (where the deployment supports it)",
    )
    answers.add_argument(
        "--concurrency", type=positive_int, default=1, help="questions in flight at once (1)"
    )
    _add_run_options(answers)

    capabilities = kinds.add_parser(
        "capabilities", help="run built-in capability suites against a model"
    )
    capabilities.add_argument("--model", "-m", required=True)
    capabilities.add_argument(
        "--suite",
        default="all",
        help=f"comma-separated: {', '.join(SUITES)} or all (default all)",
    )
    capabilities.add_argument(
        "--repeat", type=positive_int, default=1, help="runs per item, for consistency (1)"
    )
    capabilities.add_argument("--temperature", type=float, help="sampling temperature")
    _add_run_options(capabilities)

    comparison = kinds.add_parser("compare", help="two eval runs side by side")
    comparison.add_argument("a", type=Path, help="a run's JSON file")
    comparison.add_argument("b", type=Path, help="another run's JSON file")
    comparison.add_argument("--json", action="store_true", help="print one JSON object")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="write PREFIX.json and PREFIX.html")
    parser.add_argument("--name", help="the run's name in the report (default: the prefix)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--url", help="a gatehouse server to call instead of in-process models")
    parser.add_argument("--api-key", help="the caller's key for --url")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``eval answers | capabilities | compare``; input errors raise GatehouseError."""
    if args.eval_command == "compare":
        return _compare(args)
    try:
        if args.eval_command == "answers":
            metrics = _answer_metrics(args)
        else:
            items = select(part.strip() for part in args.suite.split(",") if part.strip())
    except ValueError as exc:
        print(f"gatehouse: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.eval_command == "answers":
        result = asyncio.run(_answers(settings, args, metrics))
    else:
        result = asyncio.run(_capabilities(settings, args, items))
    _save_and_print(result, args)
    return _nothing_scored(result)


def _nothing_scored(result: EvalRun) -> int:
    """1, with the first failure's reason, when every score of the run failed:
    a wrong ``--url`` or key, or a model that is down, not a model scoring 0."""
    summaries = result.summary.values()
    if not summaries or any(s.scored for s in summaries) or not any(s.failed for s in summaries):
        return 0
    reason = next(
        (
            score.reason
            for item in result.items
            for score in item.scores.values()
            if score.failed and score.reason
        ),
        "see the report",
    )
    print(f"gatehouse: error: no item could be scored: {reason}", file=sys.stderr)
    return 1


def _answer_metrics(args: argparse.Namespace) -> list[str]:
    if args.metrics is None:
        return list(ANSWER_METRICS if args.judge else DETERMINISTIC_METRICS)
    metrics = list(dict.fromkeys(m.strip() for m in args.metrics.split(",") if m.strip()))
    unknown = [m for m in metrics if m not in ANSWER_METRICS]
    if unknown or not metrics:
        problem = f"unknown answer metric {unknown[0]!r}" if unknown else "no metric named"
        raise ValueError(f"{problem}: choose from {', '.join(ANSWER_METRICS)}")
    if not args.judge and (judged := [m for m in metrics if m in JUDGE_METRICS]):
        raise ValueError(f"{judged[0]} is judged by a model: name one with --judge")
    return metrics


async def _answers(settings: Settings, args: argparse.Namespace, metrics: list[str]) -> EvalRun:
    questions = read_answer_set(args.dataset)
    remote = _remote(args)
    source: AnswerSource
    client: ChatClient
    if remote is not None:
        source, client = remote, remote
    else:
        from gatehouse.cli.rag import build_engine

        engine = build_engine(settings)
        engine.collection(args.collection)  # a missing collection fails before any question
        source, client = EngineSource(engine), engine.models.client(LOCAL, "eval.judge")
    judge = None
    if args.judge:
        judge = Judge(
            client,
            args.judge,
            retries=args.judge_retries,
            max_tokens=args.judge_max_tokens,
            json_mode=args.judge_json,
        )
    try:
        return await evaluate_answers(
            questions,
            source,
            AnswerSettings(
                collection=args.collection,
                model=args.model,
                top_k=args.top_k,
                max_tokens=args.max_tokens,
                concurrency=args.concurrency,
            ),
            metrics=metrics,
            judge=judge,
            name=args.name or _default_name(args, "answers"),
            progress=_Progress(len(questions)),
        )
    finally:
        if remote is not None:
            await remote.aclose()


async def _capabilities(
    settings: Settings, args: argparse.Namespace, items: list[CapabilityItem]
) -> EvalRun:
    remote = _remote(args)
    client: ChatClient
    if remote is not None:
        client = remote
    else:
        from gatehouse.gateway import CallerClient, build_gateway

        gateway = build_gateway(settings, started_at=int(time.time()))
        gateway.model(args.model)  # an unknown model fails before any call
        client = CallerClient(gateway, LOCAL, "eval.capabilities")
    try:
        return await run_capabilities(
            client,
            args.model,
            items,
            repeat=args.repeat,
            temperature=args.temperature,
            name=args.name or _default_name(args, "capabilities"),
            progress=_Progress(len(items)),
        )
    finally:
        if remote is not None:
            await remote.aclose()


class _Progress:
    """One stderr line per finished item: these runs take minutes on a small machine."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.started = time.monotonic()

    def __call__(self, item: ItemResult) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        print(f"eval: {self.done}/{self.total} {item.id} ({elapsed:.0f} s)", file=sys.stderr)


def _remote(args: argparse.Namespace) -> RemoteGateway | None:
    if not args.url:
        return None
    return RemoteGateway(args.url, args.api_key)


def _prefix(args: argparse.Namespace, kind: str) -> Path:
    if args.out is not None:
        out: Path = args.out
        return out.with_suffix("") if out.suffix in (".json", ".html") else out
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return Path("eval-runs") / f"{kind}-{stamp}"


def _default_name(args: argparse.Namespace, kind: str) -> str:
    return _prefix(args, kind).name


def _save_and_print(result: EvalRun, args: argparse.Namespace) -> None:
    prefix = _prefix(args, result.kind)
    json_path, html_path = (
        prefix.with_name(prefix.name + ".json"),
        prefix.with_name(prefix.name + ".html"),
    )
    try:
        write_run(result, json_path)
        write_report(result, html_path)
    except OSError as exc:
        raise ValidationFailedError(f"{prefix}: cannot write the report: {exc.strerror}") from None
    if args.json:
        body = {
            "kind": result.kind,
            "name": result.name,
            "summary": {m: s.model_dump() for m, s in result.summary.items()},
            "latency": result.latency.model_dump() if result.latency else None,
            "json": str(json_path),
            "html": str(html_path),
        }
        print(orjson.dumps(body).decode())
        return
    width = max(len("metric"), *(len(m) for m in result.summary))
    print(f"{'metric':<{width}}  {'mean':>6}  scored  failed  skipped")
    for metric, summary in result.summary.items():
        mean = "-" if summary.mean is None else f"{summary.mean:.3f}"
        print(
            f"{metric:<{width}}  {mean:>6}  {summary.scored:>6}  {summary.failed:>6}"
            f"  {summary.skipped:>7}"
        )
    if result.latency is not None:
        print(
            f"latency: p50 {result.latency.p50_ms:.0f} ms, p95 {result.latency.p95_ms:.0f} ms "
            f"over {result.latency.count} calls"
        )
    print(f"wrote {json_path} and {html_path}", file=sys.stderr)


def _compare(args: argparse.Namespace) -> int:
    a, b = read_run(args.a), read_run(args.b)
    comparison = compare(a, b, a_label=str(args.a), b_label=str(args.b))
    if args.json:
        print(comparison.model_dump_json())
    else:
        print(render_text(comparison))
    return 0
