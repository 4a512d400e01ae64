"""One configuration reload reaches every replica sharing a real redis-server.

Two ``gatehouse serve`` processes, each with its own config file (as files are
mounted per replica) and one Redis. Both files change; the reload is asked of
one replica; the other serves the new model group soon after (polled with a
generous bound; the delay is printed) and the answer says it reported. A
replica whose new file is refused keeps its old configuration and logs one
line, the asker is unaffected. Only an admin credential without a team may
ask.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from ..services import Redis
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, SECOND_GROUP, admin, call, create_key, write_config

REFUSED_LINE = "asked by another replica: not reloaded, the old configuration stays"


def _models(server: RunningServer) -> set[str]:
    response = admin(server, "GET", "/v1/models")
    assert response.status_code == 200, response.text
    return {m["id"] for m in response.json()["data"]}


def _replica(server: RunningServer) -> str:
    """How the fleet names a replica: host name and process id."""
    return f"{socket.gethostname()}:{server.process.pid}"


def _seconds_until(condition: object, what: str, within: float = 20.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < within:
        if condition():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {within}s: {what}")


@pytest.fixture
def configs(upstream: FakeUpstream, tmp_path: Path) -> Iterator[list[Path]]:
    paths = []
    for index in range(2):
        (tmp_path / f"r{index}").mkdir()
        paths.append(write_config(tmp_path / f"r{index}" / "gatehouse.yaml", upstream))
    yield paths
    upstream.reset()


@pytest.fixture
def replicas(
    configs: list[Path], redis_server: Redis, tmp_path: Path
) -> Iterator[list[RunningServer]]:
    env = {"GATEHOUSE_MASTER_KEY": MASTER, "GATEHOUSE_STORE__REDIS_URL": redis_server.url}
    servers: list[RunningServer] = []
    try:
        for index, config in enumerate(configs):
            servers.append(start_server(tmp_path / f"data-{index}", env=env, config=config))
        yield servers
    finally:
        for server in servers:
            stop_server(server)


def test_a_reload_asked_of_one_replica_reaches_the_other(
    replicas: list[RunningServer], configs: list[Path], upstream: FakeUpstream
) -> None:
    asker, other = replicas
    for config in configs:
        write_config(config, upstream, SECOND_GROUP.format(base=upstream.base_url))
    assert "up2" not in _models(other)

    started = time.monotonic()
    response = admin(asker, "POST", "/admin/config/reload")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "applied"
    assert "up2" in body["models"]
    fleet = body["fleet"]
    assert fleet["asked"] is True
    # Within the answer's wait (2 s) unless this machine is very slow: then pending.
    reports = {r["replica"]: r for r in fleet["reported"]}
    assert _replica(other) in set(reports) | set(fleet["pending"])
    if _replica(other) in reports:
        assert reports[_replica(other)]["status"] == "applied"
        assert "up2" in reports[_replica(other)]["models"]

    delay = _seconds_until(lambda: "up2" in _models(other), "the other replica serves up2")
    print(f"\nthe other replica served the new model group {delay:.2f}s after the reload answer")
    print(f"the reload answer took {time.monotonic() - started - delay:.2f}s")
    chat = admin(
        other,
        "POST",
        "/v1/chat/completions",
        {"model": "up2", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chat.status_code == 200, chat.text
    assert upstream.models()[-1] == "second-model"
    # Each replica reloaded once: the asker's own poll does not reload again.
    assert REFUSED_LINE not in other.log.read_text()
    assert asker.log.read_text().count("configuration reloaded:") == 1
    assert other.log.read_text().count("configuration reloaded:") == 1


def test_a_replica_whose_configuration_is_refused_keeps_the_old_one(
    replicas: list[RunningServer], configs: list[Path], upstream: FakeUpstream
) -> None:
    asker, other = replicas
    write_config(configs[0], upstream, SECOND_GROUP.format(base=upstream.base_url))
    write_config(configs[1], upstream, "router: {strategy: fastest-please}\n")

    response = admin(asker, "POST", "/admin/config/reload")
    assert response.status_code == 200, response.text  # the asker's own file is good
    assert "up2" in response.json()["models"]
    _seconds_until(lambda: REFUSED_LINE in other.log.read_text(), "the refused reload is logged")
    refused = [line for line in other.log.read_text().splitlines() if REFUSED_LINE in line]
    assert len(refused) == 1  # one line, naming the key
    assert "router.strategy" in refused[0]
    fleet = response.json()["fleet"]
    for report in fleet["reported"]:
        if report["replica"] == _replica(other):
            assert report["status"] == "refused"
            assert "fastest" not in str(report)  # the file's text stays on that replica
    assert other.process.poll() is None
    assert _models(other) >= {"up"}
    assert "up2" not in _models(other)
    assert "up2" in _models(asker)


def test_only_an_admin_without_a_team_may_reload_the_fleet(
    replicas: list[RunningServer], redis_server: Redis
) -> None:
    asker, _ = replicas
    team_admin = create_key(asker, team="platform", scopes=["admin", "chat"])
    chat_only = create_key(asker, scopes=["chat"])
    shared = redis.Redis.from_url(redis_server.url)
    try:
        before = shared.get("gh:config:generation")
        for key in (team_admin, chat_only):
            refused = call(asker, key, "POST", "/admin/config/reload")
            assert refused.status_code == 403, refused.text
            assert refused.json()["error"]["code"] == "permission_denied"
        team = call(asker, team_admin, "POST", "/admin/config/reload").json()["error"]
        assert "platform" in team["message"]  # a team admin's scope ends at its team
        anonymous = httpx.post(f"{asker.base_url}/admin/config/reload", timeout=30)
        assert anonymous.status_code == 401
        # No replica was asked: the reload counter did not move.
        assert shared.get("gh:config:generation") == before
    finally:
        shared.close()
    assert "configuration reloaded" not in asker.log.read_text()
