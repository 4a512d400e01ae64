"""Typed records of governance: keys, teams/users, budgets, usage events, audit entries.

These cross every boundary (SQL store, cache, stages, admin API, CLI), so they
live in core and carry no behaviour beyond small predicates.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from gatehouse.core.config import LimitSpec

Period = Literal["day", "week", "month", "total"]
SubjectKind = Literal["org", "team", "user"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Budget(_Record):
    """Spend cap for one period. ``hard`` rejects; a soft budget only alerts."""

    max_usd: float = Field(ge=0.0)
    period: Period = "month"
    hard: bool = True


class BudgetSpend(NamedTuple):
    """What a budget's subject has spent in the current period, after one call
    settled: what budget alerts are decided on. Ids only, never a key's secret."""

    kind: Literal["key", "user", "team", "org"]
    subject: str  # the key's id, or the user, team or organisation name
    period: Period
    label: str  # the period's label: "2026-12", "2026-W49", "2026-12-01", "total"
    ends_at: float  # epoch seconds; inf for "total"
    max_usd: float
    spent_usd: float
    hard: bool


def period_window(period: Period, now: float) -> tuple[str, float, float]:
    """The current period's label, start and end (epoch seconds, UTC calendar).

    ``total`` never ends. Weeks start on Monday.
    """
    if period == "total":
        return "total", 0.0, float("inf")
    moment = datetime.fromtimestamp(now, UTC)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        start, end = day, day + timedelta(days=1)
        label = start.strftime("%Y-%m-%d")
    elif period == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
        label = start.strftime("%G-W%V")
    else:
        start = day.replace(day=1)
        days = calendar.monthrange(start.year, start.month)[1]
        end = start + timedelta(days=days)
        label = start.strftime("%Y-%m")
    return label, start.timestamp(), end.timestamp()


class KeyRecord(_Record):
    """A virtual key as stored: never its secret, only a salted digest."""

    id: str
    name: str
    salt: str
    digest: str
    team: str | None = None
    user: str | None = None
    org: str | None = None
    scopes: list[str]
    models: list[str] | None = None
    expires_at: float | None = None
    limits: LimitSpec | None = None
    budget: Budget | None = None
    metadata: dict[str, Any] | None = None
    created_at: float
    updated_at: float
    revoked_at: float | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def public(self) -> dict[str, Any]:
        """What the admin API shows: everything but the salt and digest."""
        data = self.model_dump(exclude={"salt", "digest"})
        for name in ("expires_at", "created_at", "updated_at", "revoked_at"):
            data[name] = iso(data[name])
        return data


class SubjectRecord(_Record):
    """An organisation, a team or a user: limits and a budget shared by all its keys."""

    kind: SubjectKind
    id: str
    limits: LimitSpec | None = None
    budget: Budget | None = None
    metadata: dict[str, Any] | None = None
    created_at: float
    updated_at: float

    def public(self) -> dict[str, Any]:
        data = self.model_dump()
        data["created_at"] = iso(self.created_at)
        data["updated_at"] = iso(self.updated_at)
        return data


class UsageEvent(_Record):
    """One request, as the ledger records it. ``id`` makes shipping idempotent."""

    id: str
    request_id: str
    created_at: float
    principal: str
    key_id: str | None = None
    user: str | None = None
    team: str | None = None
    org: str | None = None
    endpoint: str
    # What caused the call when made on a caller's behalf: ``rag.ingest``,
    # ``rag.search``, ``rag.answer`` (None for a direct API call).
    tag: str | None = None
    model: str
    deployment: str | None = None
    status: str
    http_status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # prompt_tokens include cached_tokens (cache reads) and cache_write_tokens;
    # completion_tokens include reasoning_tokens (see gatehouse.core.usage).
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float
    ttft_ms: float | None = None
    cache_hit: bool = False
    stream: bool = False
    error: str | None = None
    # Each guard rule that acted, with its action: ``entities.EMAIL:mask,
    # injection.role_play:flag`` (see :func:`guard_text`); rule names, never text.
    guard: str | None = None

    def guard_decisions(self) -> list[tuple[str, str]]:
        """The guard decisions as ``(rule, action)`` pairs, in the order they were made."""
        return parse_guard_text(self.guard)

    def public(self) -> dict[str, Any]:
        data = self.model_dump()
        data["created_at"] = iso(self.created_at)
        data["guard"] = [
            {"rule": rule, "action": action} for rule, action in self.guard_decisions()
        ]
        return data


def guard_text(decisions: Sequence[tuple[str, str]]) -> str | None:
    """Guard decisions as the ledger's compact text: ``rule:action`` pairs joined
    by commas (rule names hold neither), ``None`` when no rule acted."""
    if not decisions:
        return None
    return ",".join(f"{rule}:{action}" for rule, action in decisions)


def parse_guard_text(text: str | None) -> list[tuple[str, str]]:
    """The ``(rule, action)`` pairs of :func:`guard_text`'s output."""
    if not text:
        return []
    pairs = []
    for item in text.split(","):
        rule, _, action = item.rpartition(":")
        pairs.append((rule, action))
    return pairs


class AuditEntry(_Record):
    id: int
    at: float
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        data = self.model_dump()
        data["at"] = iso(self.at)
        return data


class SpendRow(_Record):
    """One group's spend. ``requests`` counts every recorded request;
    ``accepted`` those served, ``refused`` the rest (limits, budgets, errors)."""

    group: str
    requests: int
    accepted: int
    refused: int
    prompt_tokens: int
    completion_tokens: int
    # Parts of prompt_tokens (cache reads and writes) and of completion_tokens.
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float


def iso(epoch: float | None) -> str | None:
    """Epoch seconds as an ISO 8601 UTC timestamp."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")
