"""The access log: one line per request with the ledger's figures, and no secret or prompt."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from pydantic import ValidationError

import gatehouse.observability.access_log as access_log_module
from gatehouse.core.config import Settings
from gatehouse.core.errors import UpstreamTimeoutError
from gatehouse.observability import AccessLog
from gatehouse.server import create_app

from ..log_leaks import LeakWatch
from .governed import MASTER, Governed, governed_app
from .test_metrics import record

XS = [{"role": "user", "content": "x"}]
FIELDS = {
    "event",
    "timestamp",
    "request_id",
    "principal",
    "team",
    "endpoint",
    "model",
    "group",
    "deployment",
    "status",
    "error_type",
    "error_code",
    "refusal",
    "latency_ms",
    "ttft_ms",
    "upstream_ms",
    "stream",
    "input_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cache",
    "coalesced",
    "retries",
    "fallbacks",
}


class Logged:
    def __init__(self, gov: Governed, log: AccessLog, stream: io.StringIO) -> None:
        self.gov = gov
        self.log = log
        self.stream = stream

    def lines(self) -> list[dict[str, Any]]:
        self.log.close()
        return [orjson.loads(line) for line in self.stream.getvalue().splitlines()]


@pytest.fixture
async def logged(tmp_path: Path) -> AsyncIterator[Logged]:
    stream = io.StringIO()
    log = AccessLog(stream, format="json")
    async for gov in governed_app(tmp_path, access_log=log):
        yield Logged(gov, log, stream)
    log.close()


async def test_one_line_per_request_with_the_ledgers_figures(logged: Logged) -> None:
    gov = logged.gov
    key = await gov.new_key(team="ops", limits={"rpm": 4})
    sdk = gov.sdk(key)
    await sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
    stream = await sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    async for _ in stream:
        pass
    await sdk.embeddings.create(model="test/embed", input="x")
    gov.chat.fail_with = UpstreamTimeoutError("the upstream took too long")
    with pytest.raises(openai.APIStatusError):
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}]
        )
    gov.chat.fail_with = None
    with pytest.raises(openai.RateLimitError):
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "x"}]
        )

    lines = logged.lines()
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger?limit=100")).json()["events"]
    assert len(lines) == len(events) == 5
    assert all(set(line) == FIELDS for line in lines)
    by_id = {line["request_id"]: line for line in lines}
    for event in events:
        line = by_id[event["request_id"]]
        assert line["principal"] == event["principal"]
        assert line["team"] == "ops"
        assert line["model"] == event["model"]
        assert line["deployment"] == event["deployment"]
        assert line["status"] == event["http_status"]
        assert line["input_tokens"] == event["prompt_tokens"]
        assert line["output_tokens"] == event["completion_tokens"]
        assert line["cost_usd"] == event["cost_usd"]
        assert line["stream"] == event["stream"]
    chat, streamed, embedded, failed, refused = lines
    assert (chat["status"], chat["error_type"], chat["cost_usd"]) == (200, None, 3.0)
    assert chat["group"] == chat["deployment"] == "test/echo"
    assert chat["latency_ms"] > 0
    # Upstream time is part of the total; nothing upstream for a refusal.
    for line in (chat, streamed, embedded, failed):
        assert 0 <= line["upstream_ms"] <= line["latency_ms"]
    assert refused["upstream_ms"] is None
    assert streamed["stream"]
    assert streamed["ttft_ms"] is not None
    assert streamed["output_tokens"] == 3
    assert embedded["endpoint"] == "embeddings"
    assert (failed["status"], failed["error_type"], failed["error_code"]) == (
        504,
        "timeout",
        "upstream_timeout",
    )
    assert (refused["status"], refused["refusal"], refused["error_type"]) == (
        429,
        "rate_limit",
        "rate_limit",
    )
    assert refused["deployment"] is None


async def test_no_key_secret_or_prompt_text_reaches_any_log(
    logged: Logged, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    gov = logged.gov
    keys = [await gov.new_key(team="ops", user="alice"), await gov.new_key(limits={"rpm": 1})]
    prompts = ["the launch code is zebra-7781", "quarterly numbers: 4.21M in Lisbon"]
    for key in keys:
        sdk = gov.sdk(key)
        for prompt in prompts:
            messages = [{"role": "user", "content": prompt}]
            try:
                await sdk.chat.completions.create(model="default", messages=messages)
                stream = await sdk.chat.completions.create(
                    model="default", messages=messages, stream=True
                )
                async for _ in stream:
                    pass
                await sdk.embeddings.create(model="test/embed", input=prompt)
            except openai.RateLimitError:
                pass
    gov.chat.fail_with = UpstreamTimeoutError("the upstream took too long")
    with pytest.raises(openai.APIStatusError):
        await gov.sdk(keys[0]).chat.completions.create(
            model="default", messages=[{"role": "user", "content": prompts[0]}]
        )
    with pytest.raises(openai.AuthenticationError):
        await gov.sdk(keys[0] + "x").chat.completions.create(
            model="default", messages=[{"role": "user", "content": prompts[0]}]
        )

    lines = logged.lines()
    assert len(lines) >= 8
    captured = capsys.readouterr()
    logs = "\n".join([logged.stream.getvalue(), caplog.text, captured.out, captured.err])
    for secret in [MASTER, *keys, *(key.split("_", 1)[1] for key in keys), *prompts]:
        assert secret not in logs
    for word in ("zebra-7781", "Lisbon"):
        assert word not in logs


async def test_pretty_lines_for_people(tmp_path: Path) -> None:
    stream = io.StringIO()
    log = AccessLog(stream, format="pretty")
    async for gov in governed_app(tmp_path, access_log=log):
        key = await gov.new_key()
        await gov.sdk(key).chat.completions.create(
            model="default", messages=[{"role": "user", "content": "hi"}]
        )
    log.close()
    (line,) = stream.getvalue().splitlines()
    timestamp, event, *_ = line.split()
    assert timestamp.startswith("20")
    assert event == "request"
    assert "status=200" in line
    assert "deployment=test/echo" in line


class Stuck(io.StringIO):
    """An output that blocks until released, like a full pipe nobody reads."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def write(self, text: str) -> int:
        self.release.wait()
        return super().write(text)


def test_lines_beyond_the_bound_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(access_log_module, "MAX_QUEUED", 10)
    stream = Stuck()
    log = AccessLog(stream, format="json")
    for index in range(50):
        log.request_done(record(request_id=f"r{index}"))
    assert 30 <= log.dropped <= 40  # the writer holds one line; ten wait
    stream.release.set()
    log.close()
    assert len(stream.getvalue().splitlines()) == 50 - log.dropped


def test_the_config_turns_it_off_or_picks_the_format(tmp_path: Path) -> None:
    base: dict[str, Any] = {"data_dir": tmp_path, "local": {"chat": {"enabled": False}}}
    app = create_app(Settings.model_validate(base))
    assert isinstance(app.state.access_log, AccessLog)
    assert b"gatehouse_access_log_dropped_total 0.0" in app.state.metrics.render()
    off = {**base, "observability": {"access_log": {"enabled": False}}}
    assert create_app(Settings.model_validate(off)).state.access_log is None
    with pytest.raises(ValidationError, match=r"observability\.access_log\.format"):
        Settings.model_validate({**base, "observability": {"access_log": {"format": "xml"}}})


async def test_opt_in_bodies_are_logged_with_secrets_and_personal_data_redacted(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    log = AccessLog(stream, format="json")
    settings = {"observability": {"access_log": {"bodies": True, "body_chars": 600}}}
    provider_key = "sk-proj-" + "Zq8rT2vX9kLm4NwB7yHc3Jd5"
    async for gov in governed_app(tmp_path, access_log=log, **settings):
        key = await gov.new_key()
        sdk = gov.sdk(key)
        prompt = f"mail bob@example.org, my key {provider_key} and {key}, about the harbour"
        messages = [{"role": "user", "content": prompt}]
        await sdk.chat.completions.create(model="default", messages=messages)
        # The fake's streamed words arrive without spaces between them, which
        # glues a key to its neighbour beyond what a detector can tell apart.
        mail = [{"role": "user", "content": "write to bob@example.org about the harbour"}]
        chunks = await sdk.chat.completions.create(model="default", messages=mail, stream=True)
        async for _ in chunks:
            pass
        await sdk.embeddings.create(model="test/embed", input="call +44 20 7946 0958")
        await sdk.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "long " * 400}]
        )
    log.close()
    text = stream.getvalue()
    for leaked in ("bob@example.org", provider_key, key, key.split("_", 1)[1], "7946 0958"):
        assert leaked not in text
    chat, streamed, embedded, long = [orjson.loads(line) for line in text.splitlines()]
    assert "[EMAIL]" in chat["request_body"]
    assert "[SECRET]" in chat["request_body"]
    assert "harbour" in chat["request_body"]  # the rest of the text is kept
    assert "harbour" in chat["response_body"]  # the echo's answer, redacted the same way
    assert "[EMAIL]" in chat["response_body"]
    assert "[EMAIL]" in streamed["response_body"]
    assert "bob" not in streamed["response_body"]
    assert "[PHONE]" in embedded["request_body"]
    assert embedded["response_body"] is None  # vectors are not logged
    assert len(long["request_body"]) == 600
    assert long["request_body"].endswith("...[cut]")


async def test_bodies_are_off_by_default(logged: Logged) -> None:
    sdk = logged.gov.sdk(await logged.gov.new_key())
    await sdk.chat.completions.create(model="default", messages=XS)
    (line,) = logged.lines()
    assert "request_body" not in line
    assert "response_body" not in line


async def test_the_run_wide_watch_catches_keys_and_prompts_in_logs(
    tmp_path: Path,
) -> None:
    """The end-of-session check (tests/log_leaks.py) would see a leak. Its own
    leaks use a made-up key and prompt, in files the session's check does not read."""
    watch = LeakWatch(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        watch.install(patch)
        async for gov in governed_app(tmp_path / "app"):
            key = await gov.new_key()
            sdk = gov.sdk(key)
            prompt = "what did the lighthouse keeper write"
            await sdk.chat.completions.create(
                model="default", messages=[{"role": "user", "content": prompt}]
            )
            await sdk.embeddings.create(model="test/embed", input=["short", prompt + " down"])
        watch.uninstall()
    assert watch.keys == {key}  # every key the admin API makes is recorded
    assert watch.prompts == {prompt, prompt + " down"}  # and every prompt sent to a model
    made_up = "gh-0123456789abcdef_" + "Zr4" * 11
    watch.keys = {made_up}
    watch.prompts = {"the made-up prompt of this test"}
    watch.python_log.write_text(
        f"calling with {made_up.split('_', 1)[1]}: the made-up prompt of this test\n"
    )
    (server_log := tmp_path / "other-server.txt").write_text(f"Bearer {made_up}\n")
    (clean := tmp_path / "clean.txt").write_text("nothing here\n")
    leaks = watch.leaks([watch.python_log, server_log, clean])
    assert leaks == [
        f"{server_log}: a key gh-0123456789abcdef...",
        f"{server_log}: the key gh-0123456789abcdef...",
        f"{server_log}: the secret of gh-0123456789abcdef...",
        f"{watch.python_log}: the prompt 'the made-up prompt of this test'",
        f"{watch.python_log}: the secret of gh-0123456789abcdef...",
    ]
