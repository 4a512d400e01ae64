"""/readyz follows real redis-server and PostgreSQL processes: not ready within
2 s of a stop, ready again when they return."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gatehouse.core.config import Settings
from gatehouse.server import create_app

from ..services import start_postgres, start_redis


async def ready_status(http: httpx.AsyncClient) -> tuple[int, float, dict[str, Any]]:
    started = time.monotonic()
    response = await http.get("/readyz")
    return response.status_code, time.monotonic() - started, response.json()


async def assert_readiness_follows(
    data_dir: Path,
    store: dict[str, str],
    check: str,
    stop: Callable[[], None],
    start: Callable[[], None],
) -> None:
    """Ready; within 2 s of ``stop`` not ready, naming ``check``; ready after ``start``."""
    settings = Settings.model_validate(
        {
            "data_dir": data_dir,
            "local": {"chat": {"enabled": False}, "embeddings": {"enabled": False}},
            "store": store,
            "observability": {"access_log": {"enabled": False}},
        }
    )
    app = create_app(settings)
    gateway = app.state.gateway
    await gateway.start()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
            status, _, body = await ready_status(http)
            assert status == 200, body

            stop()
            status, took, body = await ready_status(http)
            assert status == 503
            # The check gives up on a dead store quickly (its own short timeout); the
            # bound here only tells that from a hang, so a starved machine passes too.
            assert took < 10.0
            assert [reason.split(":")[:2] for reason in body["reasons"]] == [["store", check]]

            start()
            # A restarted PostgreSQL opens its port before it accepts queries ("the
            # database system is starting up"): ready once it does.
            deadline = time.monotonic() + 60
            status, _, body = await ready_status(http)
            while status != 200 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                status, _, body = await ready_status(http)
            assert status == 200, body
    finally:
        await gateway.stop()


async def test_readiness_follows_redis_down_and_back(tmp_path: Path) -> None:
    servers = [start_redis(tmp_path)]

    def restart() -> None:
        servers.append(start_redis(tmp_path, servers[0].port))

    try:
        store = {"redis_url": servers[0].url}
        await assert_readiness_follows(tmp_path / "data", store, "redis", servers[0].stop, restart)
    finally:
        servers[-1].stop()


async def test_readiness_follows_postgres_down_and_back(tmp_path: Path) -> None:
    postgres = start_postgres()
    try:
        store = {"database_url": postgres.url}
        await assert_readiness_follows(
            tmp_path / "data", store, "sql", postgres.stop, postgres.start
        )
    finally:
        postgres.destroy()
