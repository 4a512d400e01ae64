"""Governance state across restarts, counter outages, and the settings it reads."""

from __future__ import annotations

import socket
from pathlib import Path

import openai
import pytest

from gatehouse.catalog import prompt_tokens
from gatehouse.core.config import Settings, load_settings, settings_to_json
from gatehouse.core.types import ChatCompletionRequest

from .governed import governed_app

HELLO = [{"role": "user", "content": "hello"}]


async def test_a_restart_resumes_budgets_from_the_ledger(tmp_path: Path) -> None:
    # 1 call costs 3 USD (see governed.py) and reserves the bound of its cost; the
    # budget is one more than that reservation.
    request = ChatCompletionRequest.model_validate({"model": "default", "messages": HELLO})
    reserved = prompt_tokens(request, bound=True) * 1 + 2 * 2
    async for gov in governed_app(tmp_path):
        key = await gov.new_key(budget={"max_usd": reserved + 1, "period": "total"})
        await gov.sdk(key).chat.completions.create(model="default", messages=HELLO, max_tokens=2)
    # A new process on the same data directory: in-memory counters start empty
    # and are seeded from the ledger (3 spent), so the next reservation fails.
    async for gov in governed_app(tmp_path):
        with pytest.raises(openai.RateLimitError, match="Budget exceeded"):
            await gov.sdk(key).chat.completions.create(
                model="default", messages=HELLO, max_tokens=2
            )


def _dead_redis() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def test_unreachable_counters_fail_closed_by_default(tmp_path: Path) -> None:
    async for gov in governed_app(tmp_path, store={"redis_url": _dead_redis()}):
        key = await gov.new_key(limits={"rpm": 5})
        with pytest.raises(openai.InternalServerError) as caught:
            await gov.sdk(key).chat.completions.create(model="default", messages=HELLO)
        assert caught.value.status_code == 503
        assert gov.governance.limits.counter_failures == 1
        metrics = (await gov.http.get("/metrics")).text
        assert "gatehouse_counter_store_failures_total 1.0" in metrics


async def test_unreachable_counters_may_fail_open(tmp_path: Path) -> None:
    store = {"redis_url": _dead_redis(), "redis_failure": "fail_open"}
    async for gov in governed_app(tmp_path, store=store):
        key = await gov.new_key(limits={"rpm": 5})
        await gov.sdk(key).chat.completions.create(model="default", messages=HELLO)
        assert gov.governance.limits.counter_failures == 1  # counted, not silent


def test_master_key_from_the_environment_and_secrets_in_dumps() -> None:
    settings = load_settings(environ={"GATEHOUSE_MASTER_KEY": "sk-env"})
    assert settings.auth.master_key is not None
    assert settings.auth.master_key.get_secret_value() == "sk-env"
    assert settings.auth.enabled
    assert "sk-env" not in settings.model_dump_json()
    # What worker processes receive carries the real secret.
    restored = Settings.model_validate_json(settings_to_json(settings))
    assert restored.auth.master_key == settings.auth.master_key
    assert not Settings().auth.enabled
