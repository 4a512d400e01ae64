"""Fixtures that start the real gatehouse server, with the real local models."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from ..services import Postgres, Redis, start_postgres, start_redis
from .fake_upstream import FakeUpstream
from .oidc_provider import OidcProvider


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    base_url: str
    process: subprocess.Popen[bytes]
    log: Path

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(api_key="unused", base_url=f"{self.base_url}/v1", max_retries=0)


def start_server(
    data_dir: Path,
    *extra: str,
    env: dict[str, str] | None = None,
    config: Path | None = None,
) -> RunningServer:
    """Start ``gatehouse serve`` on a free port and wait until it answers ``/healthz``."""
    port = free_port()
    log = data_dir.parent / f"server-{port}.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gatehouse",
            *(["--config", str(config)] if config else []),
            "--data-dir",
            str(data_dir),
            "serve",
            "--port",
            str(port),
            *extra,
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return RunningServer(base_url, process, log)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not become healthy:\n{log.read_text()}")


def stop_server(server: RunningServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(tmp_path_factory.mktemp("gatehouse") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="session")
def client(server: RunningServer) -> openai.OpenAI:
    return server.openai()


# -- shared state servers: real redis-server and PostgreSQL processes --


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    running = start_redis(tmp_path_factory.mktemp("redis"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Postgres]:
    running = start_postgres()
    yield running
    running.destroy()


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> str:
    """A fresh, empty database on the shared server, for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(postgres_server.url, name))
    return f"postgresql://postgres@127.0.0.1:{postgres_server.port}/{name}"


async def _create_database(url: str, name: str) -> None:
    import asyncpg

    for attempt in range(5):
        try:
            conn = await asyncpg.connect(url, timeout=30)
            break
        except (OSError, asyncpg.PostgresError):
            if attempt == 4:
                raise
            await asyncio.sleep(1)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """A fake upstream provider for one test module (``fake_upstream.py``)."""
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def oidc_provider() -> Iterator[OidcProvider]:
    """A test OpenID provider for one test module (``oidc_provider.py``)."""
    started = OidcProvider().start()
    yield started
    started.stop()
