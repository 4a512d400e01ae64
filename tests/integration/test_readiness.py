"""/readyz follows real redis-server and PostgreSQL processes: not ready within
2 s of a stop, ready again when they return."""

from __future__ import annotations

import time
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


async def test_readiness_follows_redis_down_and_back(tmp_path: Path) -> None:
    redis = start_redis(tmp_path)
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "local": {"chat": {"enabled": False}, "embeddings": {"enabled": False}},
            "store": {"redis_url": redis.url},
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

            redis.stop()
            status, took, body = await ready_status(http)
            assert status == 503
            assert took < 2.0
            assert [reason.split(":")[:2] for reason in body["reasons"]] == [["store", "redis"]]

            redis = start_redis(tmp_path, redis.port)
            status, _, body = await ready_status(http)
            assert status == 200, body
    finally:
        await gateway.stop()
        redis.stop()


async def test_readiness_follows_postgres_down_and_back(tmp_path: Path) -> None:
    postgres = start_postgres()
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "local": {"chat": {"enabled": False}, "embeddings": {"enabled": False}},
            "store": {"database_url": postgres.url},
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

            postgres.stop()
            status, took, body = await ready_status(http)
            assert status == 503
            assert took < 2.0
            assert [reason.split(":")[:2] for reason in body["reasons"]] == [["store", "sql"]]

            postgres.start()
            status, _, body = await ready_status(http)
            assert status == 200, body
    finally:
        await gateway.stop()
        postgres.destroy()
