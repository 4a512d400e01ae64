"""Webhook alerts from a real gatehouse process to a fake Slack webhook on a free port.

Traffic is real chat requests through the openai SDK, answered by the fake
upstream; the webhook is a real HTTP server that records what it receives.
A key crossing 80 % of its budget produces exactly one 80 % alert, on one
server or on two replicas sharing Redis and PostgreSQL; a deployment told to
fail opens its breaker and produces a breaker alert (and an error-rate one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from ..services import Redis
from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream
from .governance_helpers import MASTER, OUTPUT_PRICE, admin, create_key, write_config

HELLO = [{"role": "user", "content": "a b c d"}]  # echoed: 5 completion tokens
PER_CALL = 5 * OUTPUT_PRICE  # 0.0390625 USD
BUDGET = 0.4  # each call is 9.77 %: the 6th passes 50 %, the 9th 80 %, the 11th 100 %


class FakeSlack:
    """A Slack incoming webhook: records each JSON body it is posted, answers 200 ok."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = orjson.loads(self.rfile.read(length))
                with received._lock:
                    received.bodies.append(body)
                self.send_response(200)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/services/T0/B0/x"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)

    def wait_for(self, found: Callable[[list[dict[str, Any]]], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not found(self.received()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no such alert arrived; received: {self.received()}")
            time.sleep(0.05)


def title(body: dict[str, Any]) -> str:
    text: str = body["blocks"][0]["text"]["text"]
    return text


def fields(body: dict[str, Any]) -> dict[str, str]:
    """The Slack section's fields, ``*name*\\nvalue``, as a mapping."""
    pairs = (f["text"].split("\n", 1) for f in body["blocks"][1]["fields"])
    return {name.strip("*"): value for name, value in pairs}


def budget_alerts(bodies: list[dict[str, Any]], key_id: str) -> list[str]:
    """The thresholds of the budget alerts received for ``key_id``, in order."""
    return [
        fields(b)["threshold_percent"]
        for b in bodies
        if title(b).startswith("Budget threshold") and fields(b).get("key_id") == key_id
    ]


ALERTS = """
alerts:
  webhooks:
    - url: '{url}'
      format: slack
  instance: it-gateway
  check_interval_seconds: 0.1
  error_rate: {{threshold: 0.5, window_seconds: 600, min_requests: 2}}
router:
  max_retry_after: 0
  breaker: {{failures: 2, window: 600, cooldown: 600}}
"""
FLAKY = """
  - name: flaky
    num_retries: 0
    deployments:
      - provider: openai_compat
        model: flaky-model
        base_url: '{base}/v1'
"""


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.stop()


def config(path: Path, upstream: FakeUpstream, slack: FakeSlack) -> Path:
    written = write_config(path, upstream, ALERTS.format(url=slack.url))
    # A second model group whose upstream model can be told to fail on its own.
    written.write_text(
        written.read_text().replace("\nalerts:", FLAKY.format(base=upstream.base_url) + "alerts:")
    )
    return written


@pytest.fixture(scope="module")
def alerting(
    upstream: FakeUpstream, slack: FakeSlack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("alerting")
    path = config(root / "gatehouse.yaml", upstream, slack)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=path)
    yield server
    stop_server(server)


def sdk(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)


def budgeted_key(server: RunningServer) -> tuple[str, str]:
    """A key with a soft budget of BUDGET: (the key, its id)."""
    body = {"name": "alerts", "budget": {"max_usd": BUDGET, "hard": False}}
    response = admin(server, "POST", "/admin/keys", body)
    assert response.status_code == 201, response.text
    return response.json()["key"], response.json()["id"]


def wait_for_metric(server: RunningServer, line: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        text = httpx.get(
            f"{server.base_url}/metrics", headers={"authorization": f"Bearer {MASTER}"}
        ).text
        if line in text:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{line!r} not in /metrics")
        time.sleep(0.05)


def test_a_key_crossing_80_percent_sends_exactly_one_alert(
    alerting: RunningServer, slack: FakeSlack
) -> None:
    key, ident = budgeted_key(alerting)
    client = sdk(alerting, key)
    for _ in range(11):
        client.chat.completions.create(model="up", messages=HELLO, max_tokens=5)
    # One queue feeds the webhook in order: once the 100 % alert is in, any
    # second 80 % alert would have come before it.
    slack.wait_for(lambda bodies: "100" in budget_alerts(bodies, ident))
    assert budget_alerts(slack.received(), ident) == ["50", "80", "100"]
    eighty = next(
        b
        for b in slack.received()
        if title(b).startswith("Budget threshold") and fields(b)["threshold_percent"] == "80"
    )
    assert eighty["text"].startswith(":warning: gatehouse: Budget of key " + ident)
    assert fields(eighty)["spent_percent"] == "87.891"  # 9 calls of 9.765625 %
    assert eighty["blocks"][2]["elements"][0]["text"].startswith("it-gateway · ")
    # Ids only: the key itself and the prompt never reach the webhook.
    everything = orjson.dumps(slack.received()).decode()
    assert key not in everything
    assert "a b c d" not in everything


def test_a_failing_deployment_opens_its_breaker_and_alerts(
    alerting: RunningServer, slack: FakeSlack, upstream: FakeUpstream
) -> None:
    upstream.by_model["flaky-model"] = Behaviour("status", status=500)
    try:
        client = sdk(alerting, create_key(alerting))
        for _ in range(2):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model="flaky", messages=HELLO)
        slack.wait_for(lambda bodies: any(title(b).startswith("Circuit breaker") for b in bodies))
        slack.wait_for(lambda bodies: any(title(b).startswith("Error-rate") for b in bodies))
    finally:
        upstream.by_model.clear()
    breaker = [b for b in slack.received() if title(b).startswith("Circuit breaker")]
    assert len(breaker) == 1
    assert fields(breaker[0]) == {"group": "flaky", "deployment": "flaky#0", "openings": "1"}
    spike = next(b for b in slack.received() if title(b).startswith("Error-rate"))
    assert fields(spike)["group"] == "flaky"
    assert fields(spike)["failures"] == "2"
    wait_for_metric(alerting, 'gatehouse_alerts_total{event="breaker_open",outcome="sent"} 1.0')


def test_replicas_sharing_redis_send_one_alert_between_them(
    upstream: FakeUpstream,
    slack: FakeSlack,
    redis_server: Redis,
    postgres_url: str,
    tmp_path: Path,
) -> None:
    path = config(tmp_path / "gatehouse.yaml", upstream, slack)
    env = {
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_STORE__DATABASE_URL": postgres_url,
        "GATEHOUSE_STORE__REDIS_URL": redis_server.url,
    }
    servers: list[RunningServer] = []
    try:
        for index in range(2):
            servers.append(start_server(tmp_path / f"data-{index}", env=env, config=path))
        key, ident = budgeted_key(servers[0])
        clients = [sdk(server, key) for server in servers]
        # Calls alternate between the replicas: each sees the shared spend pass
        # 80 % (calls 9 and 10 land on different replicas) and both try.
        for call in range(10):
            clients[call % 2].chat.completions.create(model="up", messages=HELLO, max_tokens=5)
        # The 11th call, past 100 %: its alert follows any 80 % one on that replica.
        clients[0].chat.completions.create(model="up", messages=HELLO, max_tokens=5)
        clients[1].chat.completions.create(model="up", messages=HELLO, max_tokens=5)
        slack.wait_for(lambda bodies: "100" in budget_alerts(bodies, ident))
        for server in servers:  # a stopping server sends what it still has queued
            stop_server(server)
        servers.clear()
        assert sorted(budget_alerts(slack.received(), ident)) == ["100", "50", "80"]
    finally:
        for server in servers:
            stop_server(server)
