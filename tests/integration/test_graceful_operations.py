"""Graceful shutdown and configuration reload, on a real ``gatehouse serve`` process.

SIGTERM in the middle of a slow stream: /readyz turns 503 while the port is
still open, then the port closes, the stream still ends with [DONE], the
process exits 0 and its usage event is in the ledger with nothing left in the
outbox. A reload (the admin API or SIGHUP) takes on new model groups and
deployments, limits and guard policies, lets a stream begun before it finish
on the old deployment, and refuses a bad configuration, which leaves the old
one serving.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import MASTER, SECOND_GROUP, admin, create_key, write_config

WORDS = " ".join(f"w{i}" for i in range(12))  # the fake upstream echoes them, one a chunk
SLOW = Behaviour(chunk_delay=0.25)


def _chat(server: RunningServer, model: str, key: str = MASTER) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )


class Stream:
    """A streamed chat read on a thread of its own: the test goes on while it runs."""

    def __init__(self, server: RunningServer, model: str) -> None:
        self.started = threading.Event()
        self.events: list[bytes] = []
        self.request_id = ""
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(server, model), daemon=True)
        self._thread.start()
        assert self.started.wait(30), "the stream did not start"

    def _read(self, server: RunningServer, model: str) -> None:
        try:
            with httpx.stream(
                "POST",
                f"{server.base_url}/v1/chat/completions",
                json={
                    "model": model,
                    "stream": True,
                    "messages": [{"role": "user", "content": WORDS}],
                },
                headers={"authorization": f"Bearer {MASTER}"},
                timeout=60,
            ) as response:
                assert response.status_code == 200
                self.request_id = response.headers["x-request-id"]
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line.encode())
                        self.started.set()
        except BaseException as exc:
            self.error = exc
            self.started.set()

    def finish(self) -> list[bytes]:
        self._thread.join(60)
        assert self.error is None, self.error
        return self.events


def _text(events: list[bytes]) -> str:
    chunks = [orjson.loads(e[len(b"data: ") :]) for e in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def _wait_for(condition: object, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"not within {within}s: {what}")


@pytest.fixture
def config(upstream: FakeUpstream, tmp_path: Path) -> Iterator[Path]:
    yield write_config(tmp_path / "gatehouse.yaml", upstream)
    upstream.reset()


ENV = {"GATEHOUSE_MASTER_KEY": MASTER}


def test_sigterm_drains_streams_ships_the_outbox_and_exits_0(
    upstream: FakeUpstream, config: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    env = {**ENV, "GATEHOUSE_SERVER__SHUTDOWN_DELAY_SECONDS": "2"}
    server = start_server(data, env=env, config=config)
    try:
        upstream.default = SLOW
        stream = Stream(server, "up")
        server.process.send_signal(signal.SIGTERM)

        seen: list[object] = []
        closing: list[str | None] = []

        def closed() -> bool:
            try:
                response = httpx.get(f"{server.base_url}/readyz", timeout=2)
            except httpx.ConnectError:
                return True
            seen.append(response.status_code)
            if response.status_code == 503:
                closing.append(response.headers.get("connection"))
            return False

        _wait_for(closed, "the port closes after SIGTERM")
        assert 503 in seen  # not ready while the port was still open
        assert 200 not in seen[seen.index(503) :]
        assert set(closing) == {"close"}  # keep-alive clients are sent elsewhere
        events = stream.finish()
        assert events[-1] == b"data: [DONE]"
        assert _text(events) == f"echo: {WORDS}"  # every token arrived
        assert server.process.wait(timeout=60) == 0
    finally:
        stop_server(server)
        upstream.default = Behaviour()
    # The event was shipped before the exit, not left for the next start.
    with sqlite3.connect(data / "outbox.db") as outbox:
        assert outbox.execute("SELECT count(*) FROM outbox").fetchone() == (0,)
    again = start_server(data, env=ENV, config=config)
    try:
        events = admin(again, "GET", "/admin/ledger?limit=100").json()["events"]
        mine = [e for e in events if e["request_id"] == stream.request_id]
        assert [e["status"] for e in mine] == ["ok"]
    finally:
        stop_server(again)


def _rewrite(
    config: Path, upstream: FakeUpstream, extra: str = "", model: str = "up-model"
) -> None:
    write_config(config, upstream, extra)
    config.write_text(config.read_text().replace("model: up-model", f"model: {model}"))


def _models(server: RunningServer) -> set[str]:
    response = httpx.get(
        f"{server.base_url}/v1/models", headers={"authorization": f"Bearer {MASTER}"}
    )
    return {m["id"] for m in response.json()["data"]}


def test_reload_through_the_admin_api(upstream: FakeUpstream, config: Path, tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env=ENV, config=config)
    try:
        # Only an admin may reload.
        caller = create_key(server)
        refused = httpx.post(
            f"{server.base_url}/admin/config/reload",
            headers={"authorization": f"Bearer {caller}"},
        )
        assert refused.status_code == 403

        # A stream begun before the reload ends on the deployment it started on.
        upstream.default = SLOW
        stream = Stream(server, "up")
        _rewrite(config, upstream, SECOND_GROUP.format(base=upstream.base_url), model="v2-model")
        reloaded = admin(server, "POST", "/admin/config/reload")
        assert reloaded.status_code == 200, reloaded.text
        body = reloaded.json()
        assert body["status"] == "applied"
        assert body["applied"] == ["models"]
        assert body["restart_required"] == []
        assert {"up", "up2"} <= set(body["models"])
        upstream.default = Behaviour()
        assert _chat(server, "up").status_code == 200
        assert _chat(server, "up2").status_code == 200
        assert stream.finish()[-1] == b"data: [DONE]"
        assert upstream.models() == ["up-model", "v2-model", "second-model"]

        # The same configuration again changes nothing.
        assert admin(server, "POST", "/admin/config/reload").json()["status"] == "unchanged"

        # A bad configuration is refused, with the key named, and the old one serves on.
        config.write_text(config.read_text() + "router: {strategy: fastest-please}\n")
        bad = admin(server, "POST", "/admin/config/reload")
        assert bad.status_code == 422
        error = bad.json()["error"]
        assert error["code"] == "invalid_config"
        assert "router.strategy" in error["message"]
        assert _models(server) >= {"up", "up2"}
        assert _chat(server, "up2").status_code == 200
        assert upstream.models()[-1] == "second-model"
    finally:
        stop_server(server)
        upstream.reset()


def test_reload_on_sighup(upstream: FakeUpstream, config: Path, tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", env=ENV, config=config)
    try:
        _rewrite(config, upstream, SECOND_GROUP.format(base=upstream.base_url))
        server.process.send_signal(signal.SIGHUP)
        _wait_for(lambda: "up2" in _models(server), "SIGHUP adds the model group up2")
        assert _chat(server, "up2").status_code == 200

        # A bad configuration on SIGHUP: logged, and the old one stays.
        config.write_text(config.read_text() + "limits: {models: {up: {rpm: -1}}}\n")
        server.process.send_signal(signal.SIGHUP)
        _wait_for(
            lambda: "configuration not reloaded" in server.log.read_text(),
            "the refused reload is logged",
        )
        assert "limits.models.up.rpm" in server.log.read_text()
        assert server.process.poll() is None
        assert _models(server) >= {"up", "up2"}
        assert _chat(server, "up2").status_code == 200
    finally:
        stop_server(server)
        upstream.reset()


def test_reload_applies_limits_and_guard_policies(
    upstream: FakeUpstream, config: Path, tmp_path: Path
) -> None:
    server = start_server(tmp_path / "data", env=ENV, config=config)
    try:
        key = create_key(server)  # the master key is subject to no limit
        assert [_chat(server, "up", key).status_code for _ in range(3)] == [200, 200, 200]
        _rewrite(
            config,
            upstream,
            "limits: {models: {up: {rpm: 1}}}\n"
            "guard: {enabled: true, content: [{name: secret-project, keywords: [hi]}]}\n",
        )
        body = admin(server, "POST", "/admin/config/reload").json()
        assert body["applied"] == ["limits", "guard"]
        blocked = _chat(server, "up", key)  # the message is "hi"
        assert blocked.status_code == 400
        assert blocked.json()["error"]["code"] == "content_policy_violation"
        _rewrite(config, upstream, "limits: {models: {up: {rpm: 1}}}\n")
        assert admin(server, "POST", "/admin/config/reload").json()["applied"] == ["guard"]
        assert [_chat(server, "up", key).status_code for _ in range(2)] == [200, 429]
    finally:
        stop_server(server)
        upstream.reset()
