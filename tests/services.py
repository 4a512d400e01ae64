"""Real redis-server, PostgreSQL and Chroma processes on free ports in temporary directories.

PostgreSQL refuses to run as root: when the tests are root, the server runs
as ``nobody`` (through ``setpriv``, which execs, so the process we hold is
the server itself and stopping it is one signal).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    # Generous: on a loaded 2-core machine a fresh PostgreSQL can take a while.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text()}")


@dataclass
class Redis:
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)


def start_redis(directory: Path, port: int | None = None) -> Redis:
    """On ``port`` (to bring a stopped server back where clients expect it), or a free one."""
    port = port or free_port()
    log = directory / f"redis-{port}.log"
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    _wait_for_port(port, process, log)
    return Redis(port, process)


def _end(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> None:
    """Stop ``process`` with ``sig``; killed if it is still running after ``timeout`` s."""
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed (run scripts/ensure-test-services.sh)"
        )
    return path


def _as_postgres_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]


@dataclass
class Postgres:
    directory: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                *_as_postgres_user(),
                _pg_bin("postgres"),
                "-D",
                str(self.directory / "data"),
                "-p",
                str(self.port),
                "-k",
                str(self.directory),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        _wait_for_port(self.port, self.process, self.log)

    def stop(self) -> None:
        """Fast shutdown: clients are disconnected, as in an outage."""
        if self.process is not None:
            _end(self.process, signal.SIGINT, 20)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_postgres() -> Postgres:
    # Not under pytest's tmp_path: that is root-only, and the server runs as nobody.
    directory = Path(tempfile.mkdtemp(prefix="gatehouse-pg-"))
    os.chmod(directory, 0o777)
    data = directory / "data"
    subprocess.run(
        [
            *_as_postgres_user(),
            _pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
    )
    postgres = Postgres(directory, free_port())
    postgres.start()
    return postgres


CHROMA = Path(__file__).resolve().parents[1] / ".venv-chroma" / "bin" / "chroma"


@dataclass
class Chroma:
    """A ``chroma run`` server (``.venv-chroma``, made by ``make chroma``), its data in ``path``."""

    path: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not CHROMA.exists():
            raise RuntimeError(f"{CHROMA} is missing: run `make chroma`")
        log = self.path.parent / f"chroma-{self.port}.log"
        self.process = subprocess.Popen(
            [str(CHROMA), "run", "--path", str(self.path), "--port", str(self.port)],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        _wait_for_port(self.port, self.process, log)
        deadline = time.monotonic() + 60
        while not _heartbeat(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"chroma did not start:\n{log.read_text()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process, signal.SIGTERM, 30)
        self.process = None


def _heartbeat(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def start_chroma(directory: Path) -> Chroma:
    directory.mkdir(parents=True, exist_ok=True)
    chroma = Chroma(directory / "db", free_port())
    chroma.start()
    return chroma
