"""The image's entrypoint with the Compose stack's settings, run as processes.

No container engine runs here, so this is the next best thing to `docker
compose up`: each "container" is `sh deploy/docker/entrypoint.sh ...` with
the environment its compose service gives it, its secrets as files named
like the ones Compose mounts (GATEHOUSE_MASTER_KEY, GATEHOUSE_STORE__DATABASE_URL),
deploy/gatehouse.yaml as its config, and real PostgreSQL and Redis in place of
the `postgres` and `redis` services. It shows the order the compose file
relies on: a server refuses a database that `db upgrade` has not migrated
(store.auto_upgrade is off), the migration succeeds, then the gateway and the
RAG service serve with the key read from the secret file, and stop cleanly on
SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from ..services import Redis
from .conftest import free_port

ROOT = Path(__file__).parents[2]
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
SETTINGS = ROOT / "deploy" / "gatehouse.yaml"
MASTER = "sk-deploy-test-master"


@dataclass
class Container:
    """One compose service's process: the entrypoint, its environment and its log."""

    env: dict[str, str]
    log: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(ENTRYPOINT), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            ["sh", str(ENTRYPOINT), *args],
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.env['GATEHOUSE_SERVER__PORT']}"

    def wait_healthy(self, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"exited early ({process.returncode}):\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        pytest.fail(f"not healthy within 60 s:\n{self.log.read_text()}")

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def secrets(tmp_path: Path, postgres_url: str) -> Path:
    """The files Compose mounts under /run/secrets for the gatehouse services."""
    folder = tmp_path / "secrets"
    folder.mkdir()
    (folder / "GATEHOUSE_MASTER_KEY").write_text(MASTER + "\n")
    (folder / "GATEHOUSE_STORE__DATABASE_URL").write_text(postgres_url)
    # Mounted for the postgres service only; the entrypoint leaves it alone.
    (folder / "postgres_password").write_text("not a gatehouse setting")
    return folder


def container(tmp_path: Path, name: str, secrets: Path, redis: Redis, **env: str) -> Container:
    redis_base = redis.url.rsplit("/", 1)[0]
    return Container(
        env={
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
            "HOME": str(tmp_path),
            # What the compose file and the image set.
            "GATEHOUSE_CONFIG": str(SETTINGS),
            "GATEHOUSE_ENTRYPOINT_SECRETS_DIR": str(secrets),
            "GATEHOUSE_DATA_DIR": str(tmp_path / name),
            "XDG_CACHE_HOME": str(tmp_path / name / "cache"),
            "HF_HUB_OFFLINE": "1",
            "GATEHOUSE_SERVER__HOST": "127.0.0.1",
            "GATEHOUSE_SERVER__PORT": str(free_port()),
            # This machine's addresses in place of the compose services' names; no
            # Chroma server runs here, so vectors stay in the RAG service's volume.
            "GATEHOUSE_STORE__REDIS_URL": f"{redis_base}/0",
            "GATEHOUSE_CACHE__REDIS_URL": f"{redis_base}/1",
            "GATEHOUSE_RAG__VECTOR_BACKEND": "embedded",
            # No model is needed to show the wiring.
            "GATEHOUSE_LOCAL__CHAT__ENABLED": "false",
            "GATEHOUSE_LOCAL__EMBEDDINGS__ENABLED": "false",
            "GATEHOUSE_LOCAL__RERANK__ENABLED": "false",
            **env,
        },
        log=tmp_path / f"{name}.log",
    )


@pytest.fixture
def containers() -> Iterator[list[Container]]:
    started: list[Container] = []
    yield started
    for each in started:
        each.stop()


def get(service: Container, path: str, key: str | None = MASTER) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.get(service.base_url + path, headers=headers, timeout=10)


def test_migrate_then_serve_both_roles_with_secrets_from_files(
    tmp_path: Path, secrets: Path, redis_server: Redis, containers: list[Container]
) -> None:
    gateway = container(tmp_path, "gateway", secrets, redis_server)
    containers.append(gateway)

    # Before `migrate` ran: the settings turn store.auto_upgrade off, so the
    # server refuses the empty database instead of migrating it itself.
    refused = gateway.run("serve", "--role", "gateway")
    assert refused.returncode != 0
    assert "gatehouse db upgrade" in refused.stdout + refused.stderr

    migrate = container(tmp_path, "migrate", secrets, redis_server).run("db", "upgrade")
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    serving = gateway.start("serve", "--role", "gateway")
    gateway.wait_healthy(serving)
    assert get(gateway, "/readyz", key=None).status_code == 200
    # The master key came from the secret file (its final newline dropped).
    assert get(gateway, "/v1/models").status_code == 200
    assert get(gateway, "/v1/models", key="sk-wrong").status_code == 401
    assert get(gateway, "/v1/rag/collections").status_code == 404  # the rag role's

    rag = container(
        tmp_path, "rag", secrets, redis_server, GATEHOUSE_RAG__GATEWAY_URL=gateway.base_url
    )
    containers.append(rag)
    rag_serving = rag.start("serve", "--role", "rag")
    rag.wait_healthy(rag_serving)
    assert get(rag, "/readyz", key=None).status_code == 200
    assert get(rag, "/v1/rag/collections").status_code == 200
    assert get(rag, "/v1/rag/collections", key="sk-wrong").status_code == 401

    # `docker compose stop`: SIGTERM, a drain, exit 0 (the shell execs gatehouse,
    # so the signal reaches it).
    for process in (rag_serving, serving):
        process.send_signal(signal.SIGTERM)
    for process in (rag_serving, serving):
        assert process.wait(timeout=40) == 0
