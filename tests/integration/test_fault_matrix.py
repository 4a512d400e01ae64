"""The fault-injection matrix: every upstream fault, streamed and not, through a real server.

Each fault of the fake upstream is played against two model groups, through
the official openai SDK:

- ``alone-<fault>``: the faulty deployment only (one retry). The call ends in a
  retry that succeeds (a 5xx burst) or in a clean OpenAI-shaped error, well
  within the configured deadline.
- ``backed-<fault>``: the faulty deployment with a fallback group on a healthy
  deployment: the call succeeds, except a stream cut after its first chunks
  (the client has part of an answer; a retry would repeat it), which ends with
  an error event.

The key faults are played again on an Anthropic-format and a Gemini-format
deployment (``alone-<dialect>-<fault>``, :func:`test_fault_in_another_dialect`):
the dialects share the transport and the upstream error handling, and this
shows each of their translations ends every fault the same way.

After every call: the server's sockets to the upstream are back to what they
were (none half-closed, none left over from the fault), and the request has
exactly one ledger record, whatever its outcome. docs/reliability.md tabulates
the outcomes.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import Behaviour, FakeUpstream

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "one two three four five"}
]
ECHO = "echo: one two three four five"
# The faulty deployments' timeouts (seconds): short, so the matrix is quick.
READ = 1.0
FIRST_TOKEN = 1.0
TOTAL = 4.0
ATTEMPTS = 2  # num_retries: 1
# A client that got no answer by then was left hanging: far past any deadline
# the configuration allows (ATTEMPTS x TOTAL plus backoff and fallback).
HARD_TIMEOUT = 30.0
BIG = 4 * 1024 * 1024
# The faulty deployments' max_response_bytes: BIG is past it, an ordinary answer far within.
CAP = 1024 * 1024


@dataclass(frozen=True)
class Fault:
    name: str
    behaviour: Behaviour
    burst: int = 0  # > 0: only the first `burst` calls fail (then the upstream recovers)
    # The `alone` group's outcome: None, success; else the HTTP status of the error.
    alone_status: int | None = 502
    # The `alone` group's calls to the upstream: a try and a retry, or one call for an
    # answer that came but is garbage (not retried: the upstream did the work, and
    # another try could be billed again; a fallback group is still tried).
    tries: int = ATTEMPTS
    # Streams: the fault strikes after the first chunks went out, so the client
    # gets them and then an error event (no retry, no fallback: it would repeat them).
    breaks_stream: bool = False
    stream_error: str = "ended the stream"  # ... and the error event says this


FAULTS = [
    Fault("latency_spike", Behaviour("delay", delay=3 * READ), alone_status=504),
    Fault("429_storm", Behaviour("status", status=429, retry_after=0.2), alone_status=429),
    Fault("5xx_burst", Behaviour("status", status=503), burst=1, alone_status=None),
    Fault("connection_reset", Behaviour("reset")),
    Fault("stall_before_first_token", Behaviour("stall"), alone_status=504),
    Fault("stream_cut_midway", Behaviour("cut", cut_after=3), breaks_stream=True),
    Fault("malformed_json", Behaviour("malformed"), tries=1),
    # A 4 MiB answer, past CAP: not retried (it came, and may be billed), a fallback is
    # tried. Streamed, one 4 MiB event, past the 2 MiB a line (an SSE event) may have.
    Fault(
        "oversized_response",
        Behaviour("oversized", oversized_bytes=BIG),
        tries=1,
        breaks_stream=True,
    ),
    # The same 4 MiB streamed in 64 KiB events: each is fine, all together pass CAP.
    Fault(
        "oversized_stream",
        Behaviour("oversized", oversized_bytes=BIG, piece_chars=64 * 1024),
        tries=1,
        breaks_stream=True,
        stream_error=f"more than {CAP} bytes of its stream",
    ),
    Fault("wrong_content_type", Behaviour("wrong_type"), tries=1),
]
# Played on the Anthropic and Gemini formats too.
KEY_FAULTS = [
    f
    for f in FAULTS
    if f.name
    in {
        "5xx_burst",
        "connection_reset",
        "stall_before_first_token",
        "stream_cut_midway",
        "malformed_json",
        "oversized_response",
        "oversized_stream",
    }
]
DIALECTS = ["anthropic", "gemini"]


def _deployment(
    upstream: FakeUpstream, model: str, faulty: bool = True, provider: str = "openai_compat"
) -> str:
    limits = (
        f", max_response_bytes: {CAP}, timeout: "
        f"{{connect: 1, read: {READ}, total: {TOTAL}, first_token: {FIRST_TOKEN}}}"
        if faulty
        else ""
    )
    url = f"{upstream.base_url}/v1" if provider == "openai_compat" else upstream.base_url
    return f"{{provider: {provider}, model: {model}, base_url: '{url}', api_key: k{limits}}}"


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("faults")
    groups = [f"  - name: healthy\n    deployments: [{_deployment(upstream, 'up-healthy', False)}]"]
    for dialect in DIALECTS:
        for fault in KEY_FAULTS:
            name = f"alone-{dialect}-{fault.name}"
            deployment = _deployment(upstream, f"up-{name}", provider=dialect)
            groups.append(f"  - name: {name}\n    deployments: [{deployment}]")
    for fault in FAULTS:
        groups.append(
            f"  - name: alone-{fault.name}\n"
            f"    deployments: [{_deployment(upstream, f'up-alone-{fault.name}')}]"
        )
        groups.append(
            f"  - name: backed-{fault.name}\n    num_retries: 0\n    fallbacks: [healthy]\n"
            f"    deployments: [{_deployment(upstream, f'up-backed-{fault.name}')}]"
        )
    config = root / "gatehouse.yaml"
    config.write_text(
        "local:\n  chat: {enabled: false}\n  embeddings: {enabled: false}\naliases: {}\n"
        "router:\n  num_retries: 1\n  backoff_base: 0.01\n  backoff_max: 0.05\n"
        # Breakers stay closed: each call must meet the fault itself.
        "  breaker: {failures: 1000, window: 60, cooldown: 0.1}\n"
        "models:\n" + "\n".join(groups) + "\n"
    )
    server = start_server(root / "data", config=config)
    yield server
    stop_server(server)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def upstream_sockets(pid: int, port: int) -> list[str]:
    """The TCP states of ``pid``'s sockets to 127.0.0.1:``port`` (/proc, no psutil)."""
    mine = _socket_inodes(pid)
    states = {"01": "ESTABLISHED", "08": "CLOSE_WAIT", "04": "FIN_WAIT1", "05": "FIN_WAIT2"}
    found = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[9] in mine:
                    found.append(states.get(fields[3], fields[3]))
    return found


def _settled_sockets(gateway: RunningServer, upstream: FakeUpstream, most: int) -> list[str]:
    """The server's sockets to the upstream once they have had a moment to close."""
    deadline = time.monotonic() + 10
    while True:
        states = upstream_sockets(gateway.process.pid, upstream.port)
        healthy = all(state == "ESTABLISHED" for state in states) and len(states) <= most
        if healthy or time.monotonic() > deadline:
            return states
        time.sleep(0.05)


def _ledger_records(gateway: RunningServer, request_id: str) -> list[dict[str, object]]:
    """The request's ledger records, once the outbox has shipped them."""
    deadline = time.monotonic() + 10
    while True:
        response = httpx.get(f"{gateway.base_url}/admin/requests/{request_id}", timeout=10)
        events: list[dict[str, object]] = response.json().get("events", [])
        if events or time.monotonic() > deadline:
            time.sleep(0.3)  # a second record would have been shipped with the first
            again = httpx.get(f"{gateway.base_url}/admin/requests/{request_id}", timeout=10)
            found: list[dict[str, object]] = again.json().get("events", [])
            return found
        time.sleep(0.05)


def _call(client: openai.OpenAI, model: str, stream: bool, request_id: str) -> str:
    """The answer's text; raises the SDK's error for an error."""
    options = client.with_options(timeout=HARD_TIMEOUT, max_retries=0)
    headers = {"x-request-id": request_id}
    if not stream:
        reply = options.chat.completions.create(
            model=model,
            messages=MESSAGES,
            extra_headers=headers,
        )
        return reply.choices[0].message.content or ""
    chunks = options.chat.completions.create(
        model=model,
        messages=MESSAGES,
        stream=True,
        extra_headers=headers,
    )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


@pytest.fixture(scope="module")
def baseline(gateway: RunningServer, upstream: FakeUpstream) -> int:
    """How many sockets to the upstream the server keeps with no fault: every
    deployment called once, both ways (kept-alive connections, one a pool)."""
    upstream.reset()
    client = gateway.openai()
    groups = ["healthy"] + [f"{kind}-{f.name}" for f in FAULTS for kind in ("alone", "backed")]
    groups += [f"alone-{dialect}-{f.name}" for dialect in DIALECTS for f in KEY_FAULTS]
    for group in groups:
        for stream in (False, True):
            assert _call(client, group, stream, f"warm-{uuid.uuid4().hex}") == ECHO
    states = upstream_sockets(gateway.process.pid, upstream.port)
    assert all(state == "ESTABLISHED" for state in states)
    return len(states)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("group", ["alone", "backed"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(
    fault: Fault,
    group: str,
    stream: bool,
    gateway: RunningServer,
    upstream: FakeUpstream,
    baseline: int,
) -> None:
    _play(gateway, upstream, baseline, fault, f"{group}-{fault.name}", stream)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", KEY_FAULTS, ids=[f.name for f in KEY_FAULTS])
@pytest.mark.parametrize("dialect", DIALECTS)
def test_fault_in_another_dialect(
    dialect: str,
    fault: Fault,
    stream: bool,
    gateway: RunningServer,
    upstream: FakeUpstream,
    baseline: int,
) -> None:
    _play(gateway, upstream, baseline, fault, f"alone-{dialect}-{fault.name}", stream)


def _play(
    gateway: RunningServer,
    upstream: FakeUpstream,
    baseline: int,
    fault: Fault,
    model: str,
    stream: bool,
) -> None:
    """Call ``model`` (a group of one faulty deployment, ``up-<model>``, perhaps with a
    healthy fallback) with ``fault`` on, and check the outcome, sockets and ledger."""
    upstream.reset()
    faulty = f"up-{model}"
    backed = model.startswith("backed-")
    if fault.burst:
        upstream.then(*[fault.behaviour] * fault.burst)
    else:
        upstream.by_model[faulty] = fault.behaviour
    request_id = f"fault-{model}-{'s' if stream else 'j'}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    text: str | None = None
    error: openai.APIError | None = None
    try:
        text = _call(gateway.openai(), model, stream, request_id)
    except openai.APIError as exc:
        error = exc
    elapsed = time.monotonic() - started
    upstream.by_model.clear()

    # Never a hang: the deadline is the configured one (tries x total, then the fallback's).
    assert elapsed < ATTEMPTS * TOTAL + 5, elapsed
    if fault.breaks_stream and stream:
        # Part of the answer went out: no retry, no fallback; the stream ends in an error.
        assert isinstance(error, openai.APIError)
        assert fault.stream_error in error.message, error.message
        assert upstream.models() == [faulty]
    elif backed or fault.alone_status is None:
        assert error is None, error
        assert text == ECHO
        if backed and fault.alone_status is not None:
            assert upstream.models()[-1] == "up-healthy"
    else:
        assert isinstance(error, openai.APIStatusError), error
        assert error.status_code == fault.alone_status, (error.status_code, error.message)
        body = error.body
        assert isinstance(body, dict)
        assert {"message", "type"} <= body.keys(), body
        # Each try once; a reset on a kept-alive connection is retried once more on a
        # new one by the connection pool (a reset there may be the keep-alive race).
        calls = upstream.models()
        assert set(calls) == {faulty}
        assert fault.tries <= len(calls) <= 2 * fault.tries, calls

    # Never a leaked connection: nothing half-closed, nothing beyond the kept-alive ones.
    states = _settled_sockets(gateway, upstream, baseline)
    assert all(state == "ESTABLISHED" for state in states), states
    assert len(states) <= baseline, (states, baseline)
    # Never an unaccounted request: one ledger record, success or not.
    records = _ledger_records(gateway, request_id)
    assert len(records) == 1, records
    assert records[0]["model"] == model
    # ... and it says what the client saw (a broken stream: the upstream's 502).
    expected_status = 200 if error is None else getattr(error, "status_code", 502)
    assert records[0]["http_status"] == expected_status, records[0]
