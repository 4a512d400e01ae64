"""Dependency faults through a real server: Redis, PostgreSQL, the outbox's disk, Chroma.

Each dependency is a real process (or a real filesystem) taken away while the
server runs and given back; the server must keep the documented behaviour
while it is gone and recover without a restart once it is back.
docs/reliability.md tabulates the outcomes.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from ..services import Postgres, start_chroma, start_redis
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, admin, call, create_key, write_config

BODY = {"model": "up", "messages": [{"role": "user", "content": "a b c"}]}
RECOVERY = 30.0  # seconds a recovered dependency may take to be used again


def chat(server: RunningServer, key: str, request_id: str = "") -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"}
    if request_id:
        headers["x-request-id"] = request_id
    return httpx.post(
        f"{server.base_url}/v1/chat/completions", json=BODY, headers=headers, timeout=30
    )


def eventually(check: Callable[[], bool], what: str, within: float = RECOVERY) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def assert_openai_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert {"message", "type", "code"} <= error.keys(), error


@pytest.mark.parametrize("mode", ["fail_closed", "fail_open"])
def test_redis_down_and_back(mode: str, upstream: FakeUpstream, tmp_path: Path) -> None:
    """Counters unreachable: fail_closed refuses with 503, fail_open admits
    (docs/configuration.md, store.redis_failure); Redis back on its address,
    limits are enforced again with no restart."""
    redis = start_redis(tmp_path)
    config = write_config(tmp_path / "gatehouse.yaml", upstream)
    env = {
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_STORE__REDIS_URL": redis.url,
        "GATEHOUSE_STORE__REDIS_FAILURE": mode,
    }
    server = start_server(tmp_path / "data", env=env, config=config)
    try:
        key = create_key(server, limits={"rpm": 1000})
        assert chat(server, key).status_code == 200
        redis.stop()
        down = chat(server, key)
        if mode == "fail_closed":
            assert_openai_error(down, 503)
        else:
            assert down.status_code == 200, down.text
        redis = start_redis(tmp_path, redis.port)
        eventually(lambda: chat(server, key).status_code == 200, "served after Redis came back")
        # The counters are Redis's again: a limit of 2 a minute refuses the third call.
        limited = create_key(server, limits={"rpm": 2})
        statuses = [chat(server, limited).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
    finally:
        stop_server(server)
        redis.stop()


def test_postgres_down_and_back(
    upstream: FakeUpstream, postgres_url: str, postgres_server: Postgres, tmp_path: Path
) -> None:
    """Keys already verified keep working and their usage waits in the outbox
    (docs/configuration.md, the ledger); what needs the database (a new key, the
    admin API) is a clean 503; once it is back, the waiting events are shipped
    and everything answers again, with no restart."""
    config = write_config(tmp_path / "gatehouse.yaml", upstream)
    env = {"GATEHOUSE_MASTER_KEY": MASTER, "GATEHOUSE_STORE__DATABASE_URL": postgres_url}
    server = start_server(tmp_path / "data", env=env, config=config)
    try:
        key = create_key(server)
        unused = create_key(server)  # never verified, so not in the key cache
        assert chat(server, key).status_code == 200
        postgres_server.stop()
        served = [f"pg-down-{n}" for n in range(5)]
        for request_id in served:
            assert chat(server, key, request_id).status_code == 200
        assert_openai_error(admin(server, "GET", "/admin/requests?limit=5"), 503)
        assert_openai_error(call(server, unused, "GET", "/v1/models"), 503)
        postgres_server.start()

        def shipped() -> bool:
            response = admin(server, "GET", f"/admin/requests/{served[-1]}")
            return response.status_code == 200 and len(response.json()["events"]) == 1

        eventually(shipped, "the outbox shipped after PostgreSQL came back")
        for request_id in served:
            events = admin(server, "GET", f"/admin/requests/{request_id}").json()["events"]
            assert len(events) == 1, (request_id, events)
        assert create_key(server)  # writes work again
    finally:
        if postgres_server.process is None:
            postgres_server.start()
        stop_server(server)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for the data directory (mounting needs root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until its filesystem is full."""
    with path.open("wb") as out, pytest.raises(OSError, match="No space left"):  # noqa: PT012
        while True:
            out.write(b"\0" * 65536)
            out.flush()


def test_outbox_disk_full_and_back(
    upstream: FakeUpstream, postgres_url: str, small_disk: Path, tmp_path: Path
) -> None:
    """The outbox's disk full: a call whose usage cannot be recorded is refused
    with a clean 503, never served unaccounted; space freed, calls are served
    and recorded again, with no restart."""
    config = write_config(tmp_path / "gatehouse.yaml", upstream)
    env = {"GATEHOUSE_MASTER_KEY": MASTER, "GATEHOUSE_STORE__DATABASE_URL": postgres_url}
    server = start_server(small_disk / "data", env=env, config=config)
    try:
        key = create_key(server)
        assert chat(server, key).status_code == 200
        fill(small_disk / "filler")
        refused = [chat(server, key, f"disk-full-{n}") for n in range(3)]
        (small_disk / "filler").unlink()
        for response in refused:
            assert_openai_error(response, 503)
        eventually(lambda: chat(server, key, "disk-back").status_code == 200, "served again")

        def recorded() -> bool:
            response = admin(server, "GET", "/admin/requests/disk-back")
            return response.status_code == 200 and len(response.json()["events"]) == 1

        eventually(recorded, "the call after the disk was freed is in the ledger")
    finally:
        stop_server(server)


def test_chroma_down_and_back(tmp_path: Path) -> None:
    """Collection vectors in Chroma: while it is down, what needs vectors (dense
    and hybrid search, ingestion) is a clean 503;
    keyword search, served from the local index, still answers. Chroma back on
    its address, everything answers again with no restart, and what was stored
    meanwhile is indexed."""
    chroma = start_chroma(tmp_path / "chroma")
    env = {
        "GATEHOUSE_RAG__VECTOR_BACKEND": "chroma",
        "GATEHOUSE_RAG__CHROMA_URL": chroma.url,
    }
    server = start_server(tmp_path / "data", env=env)
    base = f"{server.base_url}/v1/rag/collections"
    documents = [
        {"id": "tides", "text": "The moon pulls the sea into tides twice a day."},
        {"id": "compost", "text": "A compost heap turns kitchen scraps into soil."},
    ]

    def search(mode: str) -> httpx.Response:
        body = {"query": "compost heap soil", "top_k": 1, "mode": mode}
        return httpx.post(f"{base}/notes/search", json=body, timeout=60)

    try:
        created = httpx.post(base, json={"name": "notes"}, timeout=60)
        assert created.status_code == 201, created.text
        added = httpx.post(f"{base}/notes/documents", json={"documents": documents}, timeout=120)
        assert added.status_code == 200, added.text
        assert search("hybrid").json()["results"][0]["document_id"] == "compost"
        chroma.stop()
        assert_openai_error(search("dense"), 503)
        assert_openai_error(search("hybrid"), 503)
        assert search("keyword").json()["results"][0]["document_id"] == "compost"
        late = {"documents": [{"id": "late", "text": "Written while the vectors were away."}]}
        assert_openai_error(httpx.post(f"{base}/notes/documents", json=late, timeout=60), 503)
        chroma.start()
        eventually(lambda: search("dense").status_code == 200, "dense search after Chroma")
        assert search("hybrid").json()["results"][0]["document_id"] == "compost"
        # The document refused with 503 was stored (the collection's own store is
        # the record; vectors are an index of it): a retry finds it unchanged, and
        # its vectors reach Chroma when the index catches up.
        again = httpx.post(f"{base}/notes/documents", json=late, timeout=60)
        assert again.json()["unchanged"] == 1, again.text
        body = {"query": "written while the vectors were away", "top_k": 1, "mode": "dense"}
        found = httpx.post(f"{base}/notes/search", json=body, timeout=60).json()["results"]
        assert found[0]["document_id"] == "late"
    finally:
        stop_server(server)
        chroma.stop()
