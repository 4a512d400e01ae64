"""Choosing a model for a task: the configured models, filtered and ranked. Pure.

:func:`candidates` describes each configured chat model group (and the local
model when it is on) from the config and the catalog: its context window
(the smallest of its deployments', as a request may land on any; a
deployment's ``context_window`` overrides its catalog entry's), what it
supports (what every deployment's catalog entry supports) and its price (as
the gateway charges it: :class:`~gatehouse.catalog.pricing.PricingTable`).

:func:`recommend` checks each against the constraints, in this order, and
names every one it fails: the context it must hold (``--context``, else the
task's typical request), the task's requirements (tools, structured output,
image input...), the cost of one typical request, and the measured median
latency. A constraint is met only by a known value: a model with no catalog
entry, no price or no recorded latency fails the constraint that needs it,
with the reason. Those that fit are ranked by eval score (best first), then
cost, then median latency (``sort`` puts cost or latency first), then name;
an unknown value ranks after every known one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from gatehouse.catalog.models import Catalog, CatalogEntry, Requirement, TaskProfile
from gatehouse.catalog.pricing import LOCAL_CHAT_MODEL, PricingTable, deployment_name
from gatehouse.catalog.workload import Workload, request_cost
from gatehouse.core.config import Price, Settings
from gatehouse.evals.results import percentile
from gatehouse.store.latency import LatencySample

SortKey = Literal["quality", "cost", "latency"]


@dataclass(frozen=True, slots=True)
class Candidate:
    """One configured model group, as the catalog and the config describe it."""

    name: str
    deployments: tuple[str, ...]  # deployment ids
    catalog: tuple[str, ...]  # the catalog entries its deployments are
    uncatalogued: tuple[str, ...]  # upstream models the catalog does not know
    context_window: int | None
    supports: frozenset[Requirement] | None  # None: some deployment is not in the catalog
    price: Price | None  # None: neither the config nor the catalog prices it


@dataclass(frozen=True, slots=True)
class Latency:
    """Measured latency of a model's calls: the whole call, and for streamed calls
    the time to the first token."""

    count: int
    p50_ms: float
    p95_ms: float
    ttft_p50_ms: float | None = None  # None: no streamed call


@dataclass(frozen=True, slots=True)
class Constraints:
    task: str
    profile: TaskProfile
    max_cost: float | None = None  # USD for one typical request
    max_latency_ms: float | None = None  # median
    context: int | None = None  # tokens; None: the task's typical request

    @property
    def needed_context(self) -> int:
        if self.context is not None:
            return self.context
        return self.profile.input_tokens + self.profile.output_tokens


@dataclass(frozen=True, slots=True)
class Assessment:
    """A candidate with what it would cost and how it measured, and why it does not fit."""

    candidate: Candidate
    cost: float | None  # USD for one typical request of the task
    latency: Latency | None
    score: float | None  # eval score in 0..1
    excluded_by: tuple[str, ...] = field(default=())

    @property
    def fits(self) -> bool:
        return not self.excluded_by


@dataclass(frozen=True, slots=True)
class Recommendation:
    constraints: Constraints
    ranked: list[Assessment]  # those that fit, best first
    excluded: list[Assessment]  # the rest, by name


def candidates(settings: Settings, catalog: Catalog, pricing: PricingTable) -> list[Candidate]:
    """Every chat model the gateway serves by its own name: the configured chat
    groups, and the local model when it is on and no group takes its name."""
    found: list[Candidate] = []
    for group in settings.models:
        if group.mode != "chat":
            continue
        entries: list[tuple[str, CatalogEntry]] = []
        uncatalogued: list[str] = []
        windows: list[int | None] = []
        for config in group.deployments:
            match = catalog.find(config.catalog_model or config.model)
            if match is None:
                uncatalogued.append(config.model)
            else:
                entries.append(match)
            windows.append(config.context_window or (match[1].context_window if match else None))
        found.append(
            Candidate(
                name=group.name,
                deployments=tuple(
                    deployment_name(group.name, i, d) for i, d in enumerate(group.deployments)
                ),
                catalog=tuple(dict.fromkeys(name for name, _ in entries)),
                uncatalogued=tuple(dict.fromkeys(uncatalogued)),
                context_window=None if None in windows else min(w for w in windows if w),
                supports=None if uncatalogued else _supported([e for _, e in entries]),
                price=pricing.known_price(group.name),
            )
        )
    names = {c.name for c in found}
    if settings.local.chat.enabled and LOCAL_CHAT_MODEL not in names:
        match = catalog.find(LOCAL_CHAT_MODEL)
        found.append(
            Candidate(
                name=LOCAL_CHAT_MODEL,
                deployments=(LOCAL_CHAT_MODEL,),
                catalog=(LOCAL_CHAT_MODEL,) if match else (),
                uncatalogued=() if match else (LOCAL_CHAT_MODEL,),
                context_window=settings.local.chat.context_window,
                supports=_supported([match[1]]) if match else None,
                # In-process: free unless the config prices it.
                price=pricing.known_price(LOCAL_CHAT_MODEL) or Price(),
            )
        )
    return found


def _supported(entries: Sequence[CatalogEntry]) -> frozenset[Requirement]:
    every: tuple[Requirement, ...] = (
        "tools",
        "structured_output",
        "reasoning",
        "image_input",
        "audio_input",
    )
    return frozenset(r for r in every if all(e.supports(r) for e in entries))


def group_latencies(
    samples: Iterable[LatencySample],
    candidates: Sequence[Candidate],
    aliases: Mapping[str, str],
) -> dict[str, Latency]:
    """Latency per candidate from the ledger's samples: a sample counts for the
    group whose deployment served it, else for the group its model name (or
    alias) names."""
    owner = {d: c.name for c in candidates for d in c.deployments}
    names = {c.name for c in candidates}
    pooled: dict[str, tuple[list[float], list[float]]] = {}
    for sample in samples:
        group = owner.get(sample.deployment or "")
        if group is None:
            resolved = aliases.get(sample.model, sample.model)
            group = resolved if resolved in names else None
        if group is not None:
            latencies, ttfts = pooled.setdefault(group, ([], []))
            latencies.extend(sample.latency_ms)
            ttfts.extend(sample.ttft_ms)
    return {name: summarise(*values) for name, values in pooled.items() if values[0]}


def summarise(latencies: Sequence[float], ttfts: Sequence[float] = ()) -> Latency:
    p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    if p50 is None or p95 is None:
        raise ValueError("no latencies to summarise")
    return Latency(len(latencies), p50, p95, percentile(ttfts, 0.5))


def assess(
    candidate: Candidate,
    constraints: Constraints,
    latency: Latency | None,
    score: float | None,
) -> Assessment:
    """The candidate against every constraint, with each one it fails named."""
    profile = constraints.profile
    reasons: list[str] = []
    need = constraints.needed_context
    if candidate.context_window is None:
        reasons.append(f"context window unknown ({_uncatalogued(candidate)})")
    elif candidate.context_window < need:
        reasons.append(f"context window {candidate.context_window:,} < {need:,} tokens")
    for requirement in profile.requires:
        if candidate.supports is None:
            reasons.append(f"{requirement} support unknown ({_uncatalogued(candidate)})")
        elif requirement not in candidate.supports:
            reasons.append(f"no {requirement} support")
    cost = None
    if candidate.price is not None:
        workload = Workload(
            requests_per_day=1,
            input_tokens=profile.input_tokens,
            output_tokens=profile.output_tokens,
        )
        cost = request_cost(candidate.price, workload)
    if constraints.max_cost is not None:
        if cost is None:
            reasons.append("no price (not in the catalog, no price in the config)")
        elif cost > constraints.max_cost:
            reasons.append(f"${cost:.6f} a request > ${constraints.max_cost:g}")
    if constraints.max_latency_ms is not None:
        if latency is None:
            reasons.append("no latency recorded (no successful chat call in the window)")
        elif latency.p50_ms > constraints.max_latency_ms:
            reasons.append(
                f"p50 latency {latency.p50_ms:,.0f} ms > {constraints.max_latency_ms:,.0f} ms"
            )
    return Assessment(candidate, cost, latency, score, tuple(reasons))


def _uncatalogued(candidate: Candidate) -> str:
    models = ", ".join(candidate.uncatalogued)
    return f"{models} not in the catalog: set catalog_model or context_window"


def recommend(
    found: Sequence[Candidate],
    constraints: Constraints,
    latencies: Mapping[str, Latency],
    scores: Mapping[str, float],
    *,
    sort: SortKey = "quality",
) -> Recommendation:
    """Every candidate assessed; those that fit ranked, the others listed by name."""
    assessed = [assess(c, constraints, latencies.get(c.name), scores.get(c.name)) for c in found]
    fits = sorted((a for a in assessed if a.fits), key=lambda a: rank_key(a, sort))
    rest = sorted((a for a in assessed if not a.fits), key=lambda a: a.candidate.name)
    return Recommendation(constraints, fits, rest)


def rank_key(
    item: Assessment, sort: SortKey
) -> tuple[tuple[bool, float], tuple[bool, float], tuple[bool, float], str]:
    """Sort key: the chosen measure first, then the others; unknown after known."""
    quality = (item.score is None, -(item.score or 0.0))
    cost = (item.cost is None, item.cost or 0.0)
    latency = (item.latency is None, item.latency.p50_ms if item.latency else 0.0)
    order = {
        "quality": (quality, cost, latency),
        "cost": (cost, quality, latency),
        "latency": (latency, quality, cost),
    }[sort]
    return (*order, item.candidate.name)
