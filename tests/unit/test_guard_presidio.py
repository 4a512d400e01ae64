"""Names and places through the Presidio adapter, with the spaCy small English
model that ``gatehouse[presidio]`` installs."""

from __future__ import annotations

import sys

import pytest
from pydantic import ValidationError

from gatehouse.core.config import GuardConfig
from gatehouse.core.errors import MissingExtraError
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    Usage,
)
from gatehouse.gateway.guard_stage import GuardStage
from gatehouse.gateway.pipeline import CallContext
from gatehouse.guard import Policy, RequestGuard, detect
from gatehouse.guard.presidio import PresidioRecognizer

TEXT = "Send the contract to Maria Gonzalez in Paris, and copy John Smith from Berlin."


@pytest.fixture(scope="module")
def presidio() -> PresidioRecognizer:
    recognizer = PresidioRecognizer()
    recognizer.load()
    return recognizer


def _spans(text: str, entities: list[object]) -> list[tuple[str, str]]:
    return [(e.type, text[e.start : e.end]) for e in entities]  # type: ignore[attr-defined]


def test_names_and_places_are_found_with_their_spans(presidio: PresidioRecognizer) -> None:
    found = detect(TEXT, recognizers=[presidio])
    assert _spans(TEXT, found) == [
        ("PERSON", "Maria Gonzalez"),
        ("LOCATION", "Paris"),
        ("PERSON", "John Smith"),
        ("LOCATION", "Berlin"),
    ]
    assert all(0 < e.score <= 1 for e in found)
    # Only the types asked for, and the built-in detectors beside them.
    mixed = "Maria Gonzalez, maria@example.com"
    assert _spans(mixed, detect(mixed, {"EMAIL", "PERSON"}, [presidio])) == [
        ("PERSON", "Maria Gonzalez"),
        ("EMAIL", "maria@example.com"),
    ]
    assert _spans(mixed, detect(mixed, {"EMAIL"}, [presidio])) == [("EMAIL", "maria@example.com")]


def test_texts_without_names_find_none(presidio: PresidioRecognizer) -> None:
    for text in ("Version 3.2.1 fixed the cache.", "Order 7731 ships on 2026-05-01.", ""):
        assert detect(text, {"PERSON"}, [presidio]) == []


def test_names_are_masked_and_restored(presidio: PresidioRecognizer) -> None:
    policy = Policy(actions={"PERSON": "mask", "LOCATION": "redact"}, recognizers=(presidio,))
    guard = RequestGuard(policy)
    sent = guard.protect(TEXT)
    assert sent == (
        "Send the contract to [PERSON_1] in [LOCATION], and copy [PERSON_2] from [LOCATION]."
    )
    assert (
        guard.restore("Done: [PERSON_1] and [PERSON_2].") == "Done: Maria Gonzalez and John Smith."
    )
    assert set(guard.decisions()) == {("entities.PERSON", "mask"), ("entities.LOCATION", "redact")}


def test_the_config_builds_the_recogniser_and_refuses_a_rule_without_one() -> None:
    config = GuardConfig.model_validate(
        {"enabled": True, "entities": {"person": "mask"}, "presidio": {"enabled": True}}
    )
    policy = Policy.from_config(config)
    assert [type(r) for r in policy.recognizers] == [PresidioRecognizer]
    assert policy.active_types() == {"PERSON"}
    with pytest.raises(ValidationError, match=r"guard\.presidio\.enabled"):
        GuardConfig.model_validate({"enabled": True, "entities": {"PERSON": "mask"}})
    with pytest.raises(ValidationError, match=r"entities\.LOCATION"):
        GuardConfig.model_validate(
            {
                "enabled": True,
                "presidio": {"enabled": True, "types": ["PERSON"]},
                "teams": {"hr": {"entities": {"LOCATION": "block"}}},
            }
        )


def test_a_missing_extra_or_model_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"guard\.presidio\.model"):
        PresidioRecognizer(model="no_such_spacy_model").load()
    monkeypatch.setitem(sys.modules, "presidio_analyzer", None)
    with pytest.raises(MissingExtraError) as missing:
        PresidioRecognizer().load()
    assert "pip install 'gatehouse[presidio]'" in missing.value.message


async def test_the_guard_stage_masks_names_before_the_upstream(
    presidio: PresidioRecognizer,
) -> None:
    stage = GuardStage(Policy(actions={"PERSON": "mask"}, recognizers=(presidio,)))
    request = ChatCompletionRequest(
        model="m", messages=[ChatMessage(role="user", content="Write to Maria Gonzalez today.")]
    )
    ctx = CallContext(request_id="r", endpoint="chat", request=request)
    seen: list[str] = []

    async def upstream(called: CallContext) -> ChatCompletion:
        assert isinstance(called.request, ChatCompletionRequest)
        text = called.request.messages[0].text()
        seen.append(text)
        return ChatCompletion(
            id="c",
            created=0,
            model="m",
            choices=[
                Choice(message=AssistantMessage(content=f"Drafted: {text}"), finish_reason="stop")
            ],
            usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        )

    answer = await stage(ctx, upstream)
    assert seen == ["Write to [PERSON_1] today."]
    assert isinstance(answer, ChatCompletion)
    assert answer.choices[0].message.content == "Drafted: Write to Maria Gonzalez today."
    assert ctx.guard == (("entities.PERSON", "mask"),)
