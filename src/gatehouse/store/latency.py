"""Measured latency of chat calls, read from the usage ledger.

The ledger records every request with its model (the name the client sent),
its deployment and its latency. :func:`chat_latencies` reads the latest
successful, uncached chat calls of each (model, deployment) since a time, at
most ``per_deployment`` of each (a window function, on SQLite and PostgreSQL
alike), so a busy gateway's figure is its recent one and the read stays
bounded. Raw events are kept ``retention.request_events_days``; older traffic
is in the daily rollups only, which hold no distribution, so it is not read.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from gatehouse.store import schema
from gatehouse.store.database import Database
from gatehouse.store.rollups import OK_STATUS


@dataclass(frozen=True, slots=True)
class LatencySample:
    """The latencies of one (model, deployment), newest first."""

    model: str
    deployment: str | None
    latency_ms: tuple[float, ...]
    ttft_ms: tuple[float, ...]  # streamed calls only


async def chat_latencies(
    database: Database, *, since: float, per_deployment: int = 1000
) -> list[LatencySample]:
    """The latest ``per_deployment`` successful uncached chat calls of each
    (model, deployment) made at or after ``since``."""
    table = schema.ledger
    position = (
        func.row_number()
        .over(
            partition_by=(table.c.model, table.c.deployment),
            order_by=(table.c.created_at.desc(), table.c.id.desc()),
        )
        .label("position")
    )
    recent = (
        select(table.c.model, table.c.deployment, table.c.latency_ms, table.c.ttft_ms, position)
        .where(
            table.c.endpoint == "chat",
            table.c.status == OK_STATUS,
            table.c.cache_hit.is_(False),
            table.c.created_at >= since,
        )
        .subquery()
    )
    statement = (
        select(recent.c.model, recent.c.deployment, recent.c.latency_ms, recent.c.ttft_ms)
        .where(recent.c.position <= per_deployment)
        .order_by(recent.c.model, recent.c.deployment, recent.c.position)
    )
    async with database.engine.connect() as conn:
        rows = (await conn.execute(statement)).all()
    grouped: dict[tuple[str, str | None], tuple[list[float], list[float]]] = {}
    for model, deployment, latency, ttft in rows:
        latencies, ttfts = grouped.setdefault((model, deployment), ([], []))
        latencies.append(float(latency))
        if ttft is not None:
            ttfts.append(float(ttft))
    return [
        LatencySample(model, deployment, tuple(latencies), tuple(ttfts))
        for (model, deployment), (latencies, ttfts) in grouped.items()
    ]
