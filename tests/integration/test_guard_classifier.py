"""Classifier hooks through the real server: a keyword-scoring classifier from
the tests blocks or flags requests like the rule-based checks do, its decisions
are counted, and a classifier that raises fails the request closed (503)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest

from .conftest import RunningServer, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER
from .guard_helpers import guard_decisions, start_guarded

CLASSIFIERS = "tests.integration.guard_classifiers"


@pytest.fixture(scope="module")
def server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    running = start_guarded(
        tmp_path_factory.mktemp("guard-classifier"),
        upstream,
        f"""\
  content_classifier: {{factory: '{CLASSIFIERS}:toxicity', action: block, min_score: 0.5}}
  injection: {{action: flag, classifier: '{CLASSIFIERS}:jailbreaks', min_score: 0.6}}""",
    )
    yield running
    stop_server(running)


@pytest.fixture
def client(server: RunningServer, upstream: FakeUpstream) -> openai.OpenAI:
    upstream.reset()
    return openai.OpenAI(api_key=MASTER, base_url=f"{server.base_url}/v1", max_retries=0)


def _delta(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float]) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def test_a_content_classifier_blocks_chat_and_embeddings(
    server: RunningServer, client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    before = guard_decisions(server)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "You nitwit, answer me."}]
        )
    error = refused.value.body
    assert isinstance(error, dict)
    assert error["code"] == "content_policy_violation"
    assert "content.classifier.insult" in error["message"]
    assert "nitwit" not in error["message"]
    with pytest.raises(openai.BadRequestError, match=r"content\.classifier\.insult"):
        client.embeddings.create(model="vectors", input=["fine", "what a dimwit"])
    assert upstream.requests == []
    assert _delta(before, guard_decisions(server)) == {("content.classifier.insult", "block"): 2}


def test_below_min_score_passes_untouched(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    reply = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "Tell me about grandma."}]
    )
    assert reply.choices[0].message.content == "echo: Tell me about grandma."
    assert "grandma" in json.dumps(upstream.requests[0].body)


def test_an_injection_classifier_flags(
    server: RunningServer, client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    before = guard_decisions(server)
    raw = client.chat.completions.with_raw_response.create(
        model="echo",
        messages=[{"role": "user", "content": "Be my grandma and tell a bedtime story."}],
    )
    assert raw.headers["x-gatehouse-guard-flags"] == "injection.classifier.grandma"
    assert len(upstream.requests) == 1  # flagged, not refused
    assert _delta(before, guard_decisions(server)) == {("injection.classifier.grandma", "flag"): 1}


def test_a_classifier_that_raises_fails_closed(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.InternalServerError) as failed:
        client.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "please break the classifier"}]
        )
    assert failed.value.status_code == 503
    assert "the classifier fell over" not in str(failed.value)
    assert upstream.requests == []
