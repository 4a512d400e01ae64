"""The run-wide log check (tests/log_leaks.py) knows every key and prompt.

It can only find what it records: this test drives the other ways keys and
prompt text enter gatehouse (keys created and rotated on the dashboard,
stored prompt templates and their variables, the playground's chat, RAG
documents, searches and answers) under a watch of its own, and checks the
watch recorded each, and that none of them reached a log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from ..log_leaks import LeakWatch
from .governed import MASTER, Governed, governed_app
from .rag_fakes import BagOfWords
from .test_ui_pages import _create
from .ui_helpers import ui_login

PRICING = {
    "models": {
        "test/echo": {"input_cost_per_token": 1, "output_cost_per_token": 2},
        "test/bow": {"input_cost_per_token": 0.001},
    }
}
TEMPLATE = "Write a limerick about the harbour master's {{ animal }}"
VARIABLE = "one-eyed lighthouse cat"
PLAYGROUND = "what the playground asked the model"
DOCUMENT = "The lighthouse keeper's log was written in green ink."
QUERY = "which ink did the keeper write with"


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[Governed, LeakWatch]]:
    watch = LeakWatch(tmp_path)
    with pytest.MonkeyPatch.context() as patch:
        watch.install(patch)
        async for gov in governed_app(tmp_path / "app", providers=[BagOfWords()], pricing=PRICING):
            yield gov, watch
        watch.uninstall()


def _auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def test_dashboard_keys_templates_playground_and_rag_are_watched(
    watched: tuple[Governed, LeakWatch],
) -> None:
    gov, watch = watched
    async with httpx.AsyncClient(transport=gov.http._transport, base_url="http://g") as browser:
        csrf = await ui_login(browser, MASTER)
        made = await _create(
            browser, csrf, name="web", scopes=["chat", "embeddings", "rag:read", "rag:write"]
        )
        rotated = await browser.post(f"/ui/keys/{made[3:19]}/rotate", data={"csrf_token": csrf})
        assert rotated.status_code == 200, rotated.text
        assert watch.keys >= {made}
        assert len(watch.keys) == 2  # the rotated key as well
        [key] = watch.keys - {made}
        assert key in rotated.text
        web = await ui_login(browser, key)
        played = await browser.post(
            "/ui/playground/chat",
            json={"model": "test/echo", "messages": [{"role": "user", "content": PLAYGROUND}]},
            headers={"x-csrf-token": web},
        )
        assert played.status_code == 200, played.text

    writer = await gov.new_key(
        name="writer", team="red", scopes=["chat", "prompts:read", "prompts:write"]
    )
    stored = await gov.http.post(
        "/v1/prompts",
        json={"name": "limerick", "template": TEMPLATE, "variables": {"animal": "string"}},
        headers=_auth(writer),
    )
    assert stored.status_code == 201, stored.text
    rendered = await gov.http.post(
        "/v1/chat/completions",
        json={
            "model": "test/echo",
            "messages": [],
            "prompt": {"id": "limerick", "variables": {"animal": VARIABLE}},
        },
        headers=_auth(writer),
    )
    assert rendered.status_code == 200, rendered.text
    made_kb = await gov.http.post(
        "/v1/rag/collections",
        json={"name": "kb", "embedding_model": "test/bow"},
        headers=_auth(key),
    )
    assert made_kb.status_code == 201, made_kb.text
    calls = [
        ("/v1/rag/collections/kb/documents", {"documents": [{"id": "log", "text": DOCUMENT}]}),
        ("/v1/rag/collections/kb/search", {"query": QUERY}),
        ("/v1/rag/collections/kb/answer", {"query": QUERY, "model": "test/echo"}),
    ]
    for path, body in calls:
        response = await gov.http.post(path, json=body, headers=_auth(key))
        assert response.status_code == 200, (path, response.text)

    assert watch.keys >= {made, key, writer}
    assert watch.prompts >= {TEMPLATE, VARIABLE, PLAYGROUND, DOCUMENT, QUERY}
    assert watch.leaks([watch.python_log]) == []
