"""Content categories: keyword and regex rules, on requests and answers, streamed too."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.core.config import GuardConfig, load_settings
from gatehouse.core.errors import ConfigError
from gatehouse.guard import Policy, PolicyViolation, RequestGuard
from gatehouse.guard.content import ContentRule, ContentStreamFilter, apply

WEAPONS = ContentRule.build(
    "weapons", keywords=["pipe bomb"], patterns=[r"how to (?:make|build) an? explosive"]
)
CODENAME = ContentRule.build("codename", keywords=["Project Falcon"], action="redact")
RULES = [WEAPONS, CODENAME]
ANSWER = "Sure. Project Falcon ships in May; project falcon is secret. Falconry is not."


def test_keywords_match_whole_words_in_any_case() -> None:
    applied = apply(RULES, ANSWER)
    assert applied.text == (
        "Sure. [REDACTED:codename] ships in May; [REDACTED:codename] is secret. Falconry is not."
    )
    assert applied.blocked is None
    assert apply(RULES, "pipe bombs and pipe-bomb").blocked is None
    assert apply(RULES, "a Pipe Bomb.").blocked == WEAPONS.rule


def test_a_block_cuts_the_text_before_the_match() -> None:
    applied = apply(RULES, "Project Falcon: here is How to build an explosive, step 1")
    assert applied.blocked == WEAPONS.rule
    assert applied.text == "[REDACTED:codename]: here is "


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 100])
def test_streaming_gives_what_the_whole_text_gives(size: int) -> None:
    for text in (ANSWER, "Safe start. Then a pipe bomb appears. Never sent.", "short"):
        stream = ContentStreamFilter(RULES, window=32)
        pieces = [stream.feed(text[i : i + size]) for i in range(0, len(text), size)]
        pieces.append(stream.flush())
        whole = apply(RULES, text)
        assert "".join(pieces) == whole.text
        assert stream.blocked == whole.blocked


def test_the_stream_holds_back_at_most_the_window() -> None:
    stream = ContentStreamFilter(RULES, window=16)
    sent = stream.feed("x" * 100)
    assert sent == "x" * 84
    assert stream.feed("y") == "x"
    assert stream.flush() == "x" * 15 + "y"


def test_after_a_block_nothing_more_is_sent() -> None:
    stream = ContentStreamFilter(RULES, window=16)
    assert stream.feed("ok then, a pipe bo") == "ok"
    assert stream.feed("mb and more") == " then, a "
    assert stream.blocked == WEAPONS.rule
    assert stream.feed("anything") == ""
    assert stream.flush() == ""


def _policy(*categories: dict[str, object]) -> Policy:
    config = GuardConfig.model_validate({"enabled": True, "content": list(categories)})
    return Policy.from_config(config)


def test_requests_are_blocked_or_redacted_by_category() -> None:
    policy = _policy(
        {"name": "weapons", "keywords": ["pipe bomb"]},
        {"name": "codename", "keywords": ["Project Falcon"], "action": "redact"},
        {"name": "leaks", "patterns": ["internal only"], "apply_to": ["output"]},
    )
    guard = RequestGuard(policy)
    assert guard.protect("about Project Falcon, internal only") == (
        "about [REDACTED:codename], internal only"
    )
    assert guard.action() == "redact"
    with pytest.raises(PolicyViolation) as caught:
        guard.protect("how does a pipe bomb work")
    assert caught.value.rule == "content.weapons"
    assert caught.value.subject == "content in category 'weapons'"
    assert guard.action() == "block"
    assert guard.filter_output("internal only").blocked is not None


def test_a_policy_of_content_categories_alone_is_active() -> None:
    assert _policy({"name": "x", "keywords": ["y"]}).active()
    assert not _policy().active()


@pytest.mark.parametrize(
    ("categories", "message"),
    [
        (
            '[{name: a, patterns: ["(unclosed"]}]',
            "guard.content.0.patterns: Value error, patterns[0] is not a valid regular expression",
        ),
        ("[{name: a}]", "guard.content.0: Value error, content category 'a' needs keywords"),
        ('[{name: "Bad Name", keywords: [x]}]', "guard.content.0.name: String should match"),
        (
            "[{name: a, keywords: [x]}, {name: a, keywords: [y]}]",
            "content category names must be unique: ['a']",
        ),
        ("[{name: a, keywords: [x], action: mask}]", "guard.content.0.action: Input should be"),
        ("[{name: a, keywords: [x], apply_to: []}]", "guard.content.0.apply_to: List should"),
    ],
)
def test_config_errors_name_the_bad_key(tmp_path: Path, categories: str, message: str) -> None:
    config = tmp_path / "gatehouse.yaml"
    config.write_text(f"guard:\n  content: {categories}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert message in str(caught.value)
