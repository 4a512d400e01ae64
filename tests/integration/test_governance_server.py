"""Governance in a real server process: keys, scopes, limits, revocation, the ledger.

Clients are the official openai SDK; the upstream is the fake upstream server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, OUTPUT_PRICE, admin, create_key, write_config

HELLO = [{"role": "user", "content": "a b c d"}]  # echoed: 5 completion tokens


@pytest.fixture(scope="module")
def governed(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("governed")
    config = write_config(root / "gatehouse.yaml", upstream)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


def sdk(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)


def test_keys_scopes_and_models_through_the_sdk(governed: RunningServer) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(governed, "gh-0123456789abcdef_" + "x" * 32).chat.completions.create(
            model="up", messages=HELLO
        )
    key = create_key(governed, models=["up"])
    reply = sdk(governed, key).chat.completions.create(model="up", messages=HELLO, max_tokens=5)
    assert reply.choices[0].message.content == "echo: a b c d"
    embed_only = create_key(governed, scopes=["embeddings"])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(governed, embed_only).chat.completions.create(model="up", messages=HELLO)
    other_model = create_key(governed, models=["elsewhere"])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(governed, other_model).chat.completions.create(model="up", messages=HELLO)


def test_expired_keys_are_rejected(governed: RunningServer) -> None:
    soon = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2))
    key = create_key(governed, expires_at=soon)
    sdk(governed, key).chat.completions.create(model="up", messages=HELLO)
    time.sleep(2.5)
    with pytest.raises(openai.AuthenticationError):
        sdk(governed, key).chat.completions.create(model="up", messages=HELLO)


def test_a_cli_revocation_reaches_the_running_server_within_a_second(
    governed: RunningServer,
) -> None:
    key = create_key(governed)
    client = sdk(governed, key)
    client.chat.completions.create(model="up", messages=HELLO)  # now cached in the server
    data_dir = Path(governed.log).parent / "data"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "gatehouse",
            "--data-dir",
            str(data_dir),
            "keys",
            "revoke",
            key[3:19],
        ],
        check=True,
        capture_output=True,
    )
    time.sleep(1.0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="up", messages=HELLO)


def test_rpm_rejects_at_exactly_the_configured_count(governed: RunningServer) -> None:
    key = create_key(governed, limits={"rpm": 4})
    client = sdk(governed, key)
    for remaining in (3, 2, 1, 0):
        raw = client.chat.completions.with_raw_response.create(model="up", messages=HELLO)
        assert raw.headers["x-ratelimit-limit-requests"] == "4"
        assert raw.headers["x-ratelimit-remaining-requests"] == str(remaining)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="up", messages=HELLO)
    response = caught.value.response
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(response.headers["retry-after"]) <= 15
    assert response.headers["x-ratelimit-remaining-requests"] == "0"


def test_max_parallel_rejects_the_request_beyond_it(
    governed: RunningServer, upstream: FakeUpstream
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from .fake_upstream import Behaviour

    key = create_key(governed, limits={"max_parallel": 2})
    upstream.then(Behaviour(delay=1.0), Behaviour(delay=1.0))

    def call(_: int) -> int:
        response = httpx.post(
            f"{governed.base_url}/v1/chat/completions",
            json={"model": "up", "messages": HELLO},
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(3) as pool:
        first = [pool.submit(call, i) for i in range(2)]
        time.sleep(0.4)
        third = call(2)
        statuses = sorted([third, *(f.result() for f in first)])
    assert statuses == [200, 200, 429]


def test_budget_and_ledger_agree(governed: RunningServer) -> None:
    per_call = 5 * OUTPUT_PRICE
    key = create_key(governed, team="ledger-team", budget={"max_usd": 3 * per_call})
    client = sdk(governed, key)
    seen = []
    for _ in range(3):
        raw = client.chat.completions.with_raw_response.create(
            model="up", messages=HELLO, max_tokens=5
        )
        seen.append(raw.headers["x-request-id"])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="up", messages=HELLO, max_tokens=5)
    assert caught.value.response.json()["error"]["code"] == "budget_exceeded"
    with pytest.raises(openai.RateLimitError):  # streams too, before they start
        client.chat.completions.create(model="up", messages=HELLO, stream=True)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = admin(governed, "GET", "/admin/spend?group_by=team").json()["rows"]
        team = [r for r in rows if r["group"] == "ledger-team"]
        if team and team[0]["requests"] == 5:
            break
        time.sleep(0.1)
    assert team[0]["cost_usd"] == 3 * per_call
    events = admin(governed, "GET", "/admin/ledger?limit=10000").json()["events"]
    mine = [e for e in events if e["key_id"] == key[3:19]]
    assert sorted(e["request_id"] for e in mine if e["status"] == "ok") == sorted(seen)
    assert {e["deployment"] for e in mine if e["status"] == "ok"} == {"up#0"}


def test_a_server_without_auth_binds_to_localhost_and_says_so(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--host", "0.0.0.0")
    try:
        log = server.log.read_text()
        assert "no authentication configured" in log
        assert "binding to 127.0.0.1 instead of 0.0.0.0" in log
    finally:
        stop_server(server)
