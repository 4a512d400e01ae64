"""``gatehouse models [list] | catalog | recommend | cost`` (docs/catalog.md).

``list`` prints the models the gateway serves. ``catalog`` prints the model
catalog (the shipped YAML with ``catalog.path`` overlaid). ``recommend``
ranks the configured chat models for a task (:mod:`gatehouse.catalog.selection`):
prices and context windows from the config and the catalog, latency measured
from the usage ledger of the configured database (like ``gatehouse spend``, no
server needed), eval scores from the JSON runs in ``--evals``. ``cost``
prices a described workload on catalog models or configured groups.

Every subcommand prints a table, or with ``--json`` one JSON object.
``recommend`` exits 1 when no model fits, after naming what excluded each.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from gatehouse.catalog.models import Catalog, load_catalog
from gatehouse.catalog.pricing import PricingTable
from gatehouse.catalog.scores import best_scores, read_runs
from gatehouse.catalog.selection import (
    Assessment,
    Constraints,
    Recommendation,
    candidates,
    group_latencies,
    recommend,
)
from gatehouse.catalog.workload import Workload, WorkloadCost, estimate, workload_cost
from gatehouse.cli.arguments import non_negative_float, non_negative_int, positive_int
from gatehouse.core.config import Settings
from gatehouse.core.errors import NotFoundError, ValidationFailedError
from gatehouse.store.database import Database
from gatehouse.store.latency import LatencySample, chat_latencies

DAY = 86_400.0
EXIT_NOTHING_FITS = 1


def add_parser(commands: Any) -> None:
    """Register ``models`` and its subcommands on the main parser's subparsers."""
    models = commands.add_parser(
        "models", help="list the configured models; the catalog, recommendations, costs"
    )
    actions = models.add_subparsers(dest="models_command")
    actions.add_parser("list", help="list the configured models (the default)")

    catalog = actions.add_parser("catalog", help="print the model catalog")
    catalog.add_argument("--json", action="store_true", help="print one JSON object")

    rec = actions.add_parser("recommend", help="rank the configured chat models for a task")
    rec.add_argument("--task", required=True, help="a task of the catalog (chat, rag, code...)")
    rec.add_argument("--max-cost", type=non_negative_float, help="USD for one typical request")
    rec.add_argument("--max-latency", type=non_negative_float, help="median latency, milliseconds")
    rec.add_argument("--context", type=positive_int, help="tokens the context window must hold")
    rec.add_argument(
        "--sort", choices=["quality", "cost", "latency"], default="quality", help="rank by"
    )
    rec.add_argument(
        "--since-days",
        type=non_negative_float,
        default=7.0,
        help="latency from the ledger's calls of the last N days (default 7)",
    )
    rec.add_argument(
        "--evals",
        type=Path,
        default=Path("eval-runs"),
        help="folder of eval run JSON files (default eval-runs)",
    )
    rec.add_argument("--json", action="store_true", help="print one JSON object")

    cost = actions.add_parser("cost", help="daily and monthly cost of a workload per model")
    cost.add_argument("--requests-per-day", type=non_negative_float, required=True)
    cost.add_argument("--input-tokens", type=non_negative_int, required=True, help="per request")
    cost.add_argument("--output-tokens", type=non_negative_int, required=True, help="per request")
    cost.add_argument(
        "--cached-fraction",
        type=float,
        default=0.0,
        help="share of input tokens read from the prompt cache, 0 to 1 (default 0)",
    )
    cost.add_argument(
        "--model",
        action="append",
        dest="models",
        help="a configured model group or a catalog model (repeatable; default: every "
        "catalog chat model)",
    )
    cost.add_argument("--json", action="store_true", help="print one JSON object")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``models`` subcommand; errors propagate as GatehouseError or ConfigError."""
    command = args.models_command or "list"
    if command == "list":
        return _list(settings)
    catalog = load_catalog(settings.catalog.path)
    if command == "catalog":
        return _catalog(catalog, args)
    if command == "cost":
        return _cost(settings, catalog, args)
    return asyncio.run(_recommend(settings, catalog, args))


def _list(settings: Settings) -> int:
    from gatehouse.gateway import build_gateway

    gateway = build_gateway(settings, started_at=int(time.time()))
    for entry in gateway.registry.entries():
        target = "" if entry.name == entry.info.id else f" -> {entry.info.id}"
        print(f"{entry.name}{target}\t{entry.info.kind}\tcontext {entry.info.context_window}")
    return 0


def _catalog(catalog: Catalog, args: argparse.Namespace) -> int:
    if args.json:
        print(orjson.dumps(catalog.model_dump(mode="json")).decode())
        return 0
    rows = [
        [
            name,
            entry.provider,
            entry.mode,
            _usd(entry.prices.input),
            _usd(entry.prices.output),
            _usd(entry.prices.cached_input),
            _usd(entry.prices.cache_write),
            f"{entry.context_window:,}",
            f"{entry.max_output_tokens:,}",
            ",".join(entry.modalities.input),
            _flags(entry.tools, entry.structured_output, entry.reasoning),
        ]
        for name, entry in catalog.models.items()
    ]
    header = ["model", "provider", "mode", "$/M in", "$/M out", "$/M cached", "$/M cache write"]
    header += ["context", "max out", "input", "supports"]
    print(_table(header, rows))
    print(f"USD per million tokens; catalog as of {catalog.as_of or 'unknown'}")
    return 0


def _flags(tools: bool, structured: bool, reasoning: bool) -> str:
    names = [("tools", tools), ("json", structured), ("reasoning", reasoning)]
    return ",".join(name for name, on in names if on) or "-"


def _cost(settings: Settings, catalog: Catalog, args: argparse.Namespace) -> int:
    try:
        workload = Workload(
            requests_per_day=args.requests_per_day,
            input_tokens=args.input_tokens,
            output_tokens=args.output_tokens,
            cached_fraction=args.cached_fraction,
        )
    except ValueError:
        raise ValidationFailedError("--cached-fraction must be between 0 and 1") from None
    costs = _workload_costs(settings, catalog, workload, args.models)
    if args.json:
        body = {"workload": workload.model_dump(), "costs": [asdict(c) for c in costs]}
        print(orjson.dumps(body).decode())
        return 0
    rows = [
        [c.model, f"${c.per_request:.6f}", f"${c.per_day:,.2f}", f"${c.per_month:,.2f}"]
        for c in costs
    ]
    print(_table(["model", "per request", "per day", "per month (30 days)"], rows))
    return 0


def _workload_costs(
    settings: Settings, catalog: Catalog, workload: Workload, models: Sequence[str] | None
) -> list[WorkloadCost]:
    """A configured group is priced as the gateway charges it; any other name from
    the catalog."""
    if not models:
        return estimate(catalog, workload)
    pricing = PricingTable.from_settings(settings)
    costs: list[WorkloadCost] = []
    for model in models:
        price = pricing.known_price(model)
        if price is not None:
            costs.append(workload_cost(model, price, workload))
            continue
        try:
            costs += estimate(catalog, workload, [model])
        except NotFoundError:
            raise NotFoundError(
                f"model {model!r} is neither a priced model group nor in the catalog"
            ) from None
    return sorted(costs, key=lambda c: (c.per_request, c.model))


async def _recommend(settings: Settings, catalog: Catalog, args: argparse.Namespace) -> int:
    profile = catalog.tasks.get(args.task)
    if profile is None:
        raise ValidationFailedError(
            f"unknown task {args.task!r}: choose from {', '.join(sorted(catalog.tasks))}"
        )
    constraints = Constraints(
        task=args.task,
        profile=profile,
        max_cost=args.max_cost,
        max_latency_ms=args.max_latency,
        context=args.context,
    )
    found = candidates(settings, catalog, PricingTable.from_settings(settings))
    samples = await _latency_samples(settings, since=time.time() - args.since_days * DAY)
    latencies = group_latencies(samples, found, settings.aliases)
    runs, skipped = read_runs(args.evals)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    scored = best_scores(runs, args.task, profile, settings.aliases)
    result = recommend(
        found, constraints, latencies, {m: s.score for m, s in scored.items()}, sort=args.sort
    )
    if args.json:
        print(orjson.dumps(_recommendation_json(result)).decode())
    else:
        print(_recommendation_text(result))
    return 0 if result.ranked else EXIT_NOTHING_FITS


async def _latency_samples(settings: Settings, *, since: float) -> list[LatencySample]:
    """The ledger's chat latencies from the configured database; none when the
    embedded database was never created (a gateway that has served nothing)."""
    url = settings.store.database_url
    if url is None and not (settings.data_dir / "gatehouse.db").exists():
        return []
    database = Database.configured(settings)
    try:
        await database.open(upgrade=settings.store.auto_upgrade)
        return await chat_latencies(database, since=since)
    finally:
        await database.close()


def _recommendation_json(result: Recommendation) -> dict[str, Any]:
    c = result.constraints
    return {
        "task": c.task,
        "typical_request": {
            "input_tokens": c.profile.input_tokens,
            "output_tokens": c.profile.output_tokens,
        },
        "constraints": {
            "max_cost": c.max_cost,
            "max_latency_ms": c.max_latency_ms,
            "context": c.needed_context,
            "requires": list(c.profile.requires),
        },
        "ranked": [_assessment_json(a) for a in result.ranked],
        "excluded": [_assessment_json(a) for a in result.excluded],
    }


def _assessment_json(item: Assessment) -> dict[str, Any]:
    candidate = item.candidate
    return {
        "model": candidate.name,
        "deployments": list(candidate.deployments),
        "catalog": list(candidate.catalog),
        "context_window": candidate.context_window,
        "cost_per_request": item.cost,
        "latency": None if item.latency is None else asdict(item.latency),
        "eval_score": item.score,
        "excluded_by": list(item.excluded_by),
    }


def _recommendation_text(result: Recommendation) -> str:
    c = result.constraints
    lines = [
        f"task {c.task}: {c.profile.input_tokens:,} input + {c.profile.output_tokens:,} output "
        f"tokens a request; context needed {c.needed_context:,}"
        + (f"; requires {', '.join(c.profile.requires)}" if c.profile.requires else "")
    ]
    if result.ranked:
        rows = [
            [
                str(rank),
                a.candidate.name,
                "?" if a.cost is None else f"${a.cost:.6f}",
                "?" if a.candidate.context_window is None else f"{a.candidate.context_window:,}",
                "-" if a.latency is None else _ms(a.latency.p50_ms),
                "-" if a.latency is None else _ms(a.latency.p95_ms),
                "-" if a.latency is None else str(a.latency.count),
                "-" if a.score is None else f"{a.score:.3f}",
                ",".join(a.candidate.catalog) or "-",
            ]
            for rank, a in enumerate(result.ranked, 1)
        ]
        header = ["#", "model", "cost/request", "context", "p50 ms", "p95 ms", "calls"]
        lines.append(_table([*header, "eval", "catalog"], rows))
    if result.excluded:
        lines.append("excluded:" if result.ranked else "no configured model fits:")
    for a in result.excluded:
        lines.append(f"  {a.candidate.name}: excluded by {'; '.join(a.excluded_by)}")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 else f"{value:.1f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
