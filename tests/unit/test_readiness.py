"""/readyz: every configured dependency checked, each bounded in time, and why it is not ready."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatehouse.core.config import Settings
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.observability.health import NotReady, run_checks
from gatehouse.server import create_app
from gatehouse.store.database import Database

from .fakes import ConstantEmbeddings, EchoChat
from .governed import MASTER, governed_app


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers: a hung dependency."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


async def readyz(tmp_path: Path, **settings: Any) -> tuple[httpx.Response, float]:
    async for gov in governed_app(tmp_path, **settings):
        started = time.monotonic()
        response = await gov.http.get("/readyz", headers={"authorization": f"Bearer {MASTER}"})
        return response, time.monotonic() - started
    raise AssertionError("unreachable")


def by_name(response: httpx.Response) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in response.json()["checks"]}


async def test_ready_lists_each_check_with_its_status_and_latency(tmp_path: Path) -> None:
    response, _ = await readyz(tmp_path)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert "reasons" not in body
    checks = by_name(response)
    assert {"store:sql", "route:test/echo", "route:test/embed", "storage:data_dir"} <= set(checks)
    assert "store:redis" not in checks  # not configured
    assert "rag:chroma" not in checks
    assert checks["store:sql"]["detail"] == "sqlite"
    for check in checks.values():
        assert check["ok"] is True
        assert check["status"] == "ok"
        assert check["latency_ms"] >= 0


async def test_redis_refusing_connections_is_not_ready(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    response, _ = await readyz(tmp_path, store={"redis_url": url})
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    redis = by_name(response)["store:redis"]
    assert (redis["ok"], redis["status"]) == (False, "failed")
    assert [reason.split(":", 2)[:2] for reason in body["reasons"]] == [["store", "redis"]]
    assert by_name(response)["store:sql"]["ok"] is True


async def test_a_hung_redis_is_not_ready_within_the_bound(tmp_path: Path, silent_port: int) -> None:
    url = f"redis://127.0.0.1:{silent_port}/0"
    response, took = await readyz(tmp_path, store={"redis_url": url})
    assert response.status_code == 503
    redis = by_name(response)["store:redis"]
    assert redis["status"] == "timeout"
    assert 900 <= redis["latency_ms"] < 1500
    assert took < 2.0


@pytest.mark.parametrize("usable", [True, False])
async def test_workers_shared_counters_file_is_checked(tmp_path: Path, usable: bool) -> None:
    # serve --workers N without Redis: admissions need <data_dir>/counters.db.
    if not usable:
        (tmp_path / "counters.db").mkdir()  # a folder where the file should be
    response, _ = await readyz(tmp_path, server={"workers": 2})
    counters = by_name(response)["store:counters"]
    assert counters["ok"] is usable
    if usable:
        assert response.status_code == 200, response.text
        assert counters["detail"] == "writable"
    else:
        assert response.status_code == 503
        assert response.json()["reasons"] == [f"store:counters: {counters['detail']}"]
        assert "counters.db" in counters["detail"]


async def test_one_process_has_no_counters_file_to_check(tmp_path: Path) -> None:
    response, _ = await readyz(tmp_path)
    assert "store:counters" not in by_name(response)
    assert not (tmp_path / "counters.db").exists()


async def test_an_unreachable_chroma_server_is_not_ready(tmp_path: Path) -> None:
    response, _ = await readyz(tmp_path, rag={"chroma_url": f"http://127.0.0.1:{closed_port()}"})
    assert response.status_code == 503
    chroma = by_name(response)["rag:chroma"]
    assert (chroma["ok"], chroma["status"]) == (False, "failed")
    assert chroma["detail"].startswith("ConnectError")


async def test_an_unreachable_sql_store_fails_its_check_without_its_password() -> None:
    database = Database(f"postgresql+asyncpg://gatehouse:hunter2@127.0.0.1:{closed_port()}/x")
    try:
        (check,) = await run_checks([("store:sql", database.ping)], within=1.0)
    finally:
        await database.close()
    assert (check.ok, check.status) == (False, "failed")
    assert "hunter2" not in check.detail


async def test_checks_run_side_by_side_each_within_its_bound() -> None:
    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    async def refused() -> str:
        raise NotReady("says no")

    async def fine() -> str:
        return "yes"

    started = time.monotonic()
    results = await run_checks(
        [("slow", slow), ("slow2", slow), ("refused", refused), ("fine", fine)], within=0.2
    )
    assert time.monotonic() - started < 1.0
    assert [(r.name, r.status, r.detail) for r in results] == [
        ("slow", "timeout", "no answer within 0.2 s"),
        ("slow2", "timeout", "no answer within 0.2 s"),
        ("refused", "failed", "says no"),
        ("fine", "ok", "yes"),
    ]


@pytest.fixture
async def plain(tmp_path: Path) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    registry = ModelRegistry([EchoChat(), ConstantEmbeddings()], {"default": "test/echo"})
    gateway = Gateway(registry, started_at=0)
    app = create_app(Settings(data_dir=tmp_path), gateway=gateway)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
        yield gateway, http


async def test_a_group_whose_breakers_are_all_open_is_not_ready(
    plain: tuple[Gateway, httpx.AsyncClient],
) -> None:
    gateway, http = plain
    (deployment,) = gateway.registry.group("test/echo").deployments
    for _ in range(10):
        deployment.breaker.on_failure(time.monotonic())
    response = await http.get("/readyz")
    assert response.status_code == 503
    route = by_name(response)["route:test/echo"]
    assert route["ok"] is False
    assert "open" in route["detail"]
    assert response.json()["reasons"] == [f"route:test/echo: {route['detail']}"]
    assert by_name(response)["route:test/embed"]["ok"] is True

    deployment.breaker.on_success()
    assert (await http.get("/readyz")).status_code == 200
