"""Guard policies: redact, mask with stable placeholders, restore (streamed too), block."""

from __future__ import annotations

import pytest

from gatehouse.core.config import GuardConfig, load_settings
from gatehouse.core.errors import ConfigError
from gatehouse.guard import Policy, PolicySet, PolicyViolation, RequestGuard

TEXT = "Mail jane@example.com or bob@example.org, again jane@example.com; call +44 20 7946 0958."


def test_redact_replaces_values_by_their_type() -> None:
    guard = RequestGuard(Policy({"EMAIL": "redact", "PHONE": "redact"}))
    assert guard.protect(TEXT) == "Mail [EMAIL] or [EMAIL], again [EMAIL]; call [PHONE]."
    assert not guard.masked
    assert guard.restore("[EMAIL]") == "[EMAIL]"


def test_mask_placeholders_are_stable_within_a_request_and_restored() -> None:
    guard = RequestGuard(Policy({"EMAIL": "mask", "PHONE": "mask"}))
    masked = guard.protect(TEXT)
    assert masked == "Mail [EMAIL_1] or [EMAIL_2], again [EMAIL_1]; call [PHONE_1]."
    # A second text of the same request shares the placeholders.
    assert guard.protect("cc jane@example.com") == "cc [EMAIL_1]"
    assert guard.masked
    assert guard.restore(masked) == TEXT
    # Placeholders this request never issued stay as they are.
    assert guard.restore("[EMAIL_3] [SECRET_1] [x]") == "[EMAIL_3] [SECRET_1] [x]"


def test_placeholders_the_user_wrote_are_never_issued() -> None:
    guard = RequestGuard(Policy({"EMAIL": "mask"}))
    guard.reserve("the template says [EMAIL_1] and [EMAIL_3]")
    assert guard.protect("to a@b.org, c@d.org") == "to [EMAIL_2], [EMAIL_4]"
    reply = "[EMAIL_1] is a slot; wrote to [EMAIL_2] and [EMAIL_4]"
    assert guard.restore(reply) == "[EMAIL_1] is a slot; wrote to a@b.org and c@d.org"


def test_each_request_numbers_from_one() -> None:
    policy = Policy({"EMAIL": "mask"})
    assert RequestGuard(policy).protect("bob@example.org") == "[EMAIL_1]"
    assert RequestGuard(policy).protect("jane@example.com") == "[EMAIL_1]"


def test_block_names_the_rule_and_never_the_value() -> None:
    guard = RequestGuard(Policy({"US_SSN": "block", "EMAIL": "mask"}))
    with pytest.raises(PolicyViolation) as caught:
        guard.protect("a@b.org, SSN 536-22-1234")
    assert caught.value.rule == "entities.US_SSN"
    assert "536" not in str(caught.value)


def test_allowed_types_are_not_scanned_and_low_scores_are_ignored() -> None:
    assert RequestGuard(Policy({"EMAIL": "allow"})).check(TEXT) == []
    strict = RequestGuard(Policy({"PHONE": "redact"}, min_score=0.9))
    assert strict.protect(TEXT) == TEXT  # phone findings score 0.8


@pytest.mark.parametrize(
    "pieces",
    [
        ["Hello [EMAIL_1], your number [PHONE_1] is set."],
        ["Hello [", "EMAIL_1], your number [PHO", "NE_1] is set."],
        ["Hello [EM", "A", "IL", "_", "1", "]", ", your number [PHONE_1", "] is set."],
        ["Hello [EMAIL_1", "]", ", your number ", "[", "PHONE_1] is set."],
    ],
)
def test_streamed_placeholders_are_restored_even_when_split(pieces: list[str]) -> None:
    guard = RequestGuard(Policy({"EMAIL": "mask", "PHONE": "mask"}))
    guard.protect("jane@example.com +44 20 7946 0958")
    restorer = guard.restorer()
    out = [restorer.feed(piece) for piece in pieces]
    out.append(restorer.flush())
    assert "".join(out) == "Hello jane@example.com, your number +44 20 7946 0958 is set."


def test_stream_holds_back_only_what_could_be_a_placeholder() -> None:
    guard = RequestGuard(Policy({"EMAIL": "mask"}))
    guard.protect("jane@example.com")
    restorer = guard.restorer()
    assert restorer.feed("see [1] and [E") == "see [1] and "
    assert restorer.feed("xtra] ok") == "[Extra] ok"
    assert restorer.feed("tail [EMAIL_") == "tail "
    assert restorer.flush() == "[EMAIL_"


def test_policy_from_config_is_off_by_default() -> None:
    assert Policy.from_config(GuardConfig()).active_types() == frozenset()
    config = GuardConfig.model_validate(
        {"enabled": True, "entities": {"EMAIL": "mask", "secret": "block"}, "min_score": 0.5}
    )
    policy = Policy.from_config(config)
    assert policy.actions == {"EMAIL": "mask", "SECRET": "block"}
    assert policy.min_score == 0.5


def test_config_errors_name_the_bad_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"GATEHOUSE_GUARD__ENTITIES__EMAIL": "hide"})
    assert "guard.entities.email" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"GATEHOUSE_GUARD__ENTITIES__PASSPORT": "mask"})
    assert "guard.entities.passport: unknown key" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"GATEHOUSE_GUARD__MIN_SCORE": "2"})
    assert "guard.min_score" in str(caught.value)


def _policies(yaml_guard: dict[str, object]) -> PolicySet:
    config = GuardConfig.model_validate({"enabled": True, **yaml_guard})
    return PolicySet.from_config(config, aliases={"default": "local/smollm2", "fast": "gpt-4o"})


def test_team_then_model_overrides_replace_the_default_per_type() -> None:
    policies = _policies(
        {
            "entities": {"EMAIL": "mask", "PHONE": "redact", "SECRET": "block"},
            "teams": {"hr": {"entities": {"email": "allow", "us_ssn": "mask"}}},
            "models": {
                "local/smollm2": {"entities": {"SECRET": "allow", "PHONE": "allow"}},
                "gpt-4o": {"entities": {"EMAIL": "block"}},
            },
        }
    )
    assert policies.policy_for(None, "other").actions == {
        "EMAIL": "mask",
        "PHONE": "redact",
        "SECRET": "block",
    }
    assert policies.policy_for("hr", "other").actions == {
        "PHONE": "redact",
        "SECRET": "block",
        "US_SSN": "mask",
    }
    # Reached through an alias; the model's override wins over the team's.
    assert policies.policy_for("hr", "default").actions == {"US_SSN": "mask"}
    assert policies.policy_for("hr", "fast").actions["EMAIL"] == "block"
    assert policies.policy_for("unknown-team", "gpt-4o").actions["EMAIL"] == "block"
    # The same object for the same pair: built once.
    assert policies.policy_for("hr", "fast") is policies.policy_for("hr", "fast")


def test_a_keys_override_sits_between_its_team_and_the_model() -> None:
    policies = _policies(
        {
            "entities": {"EMAIL": "mask"},
            "teams": {"hr": {"entities": {"EMAIL": "allow", "PHONE": "redact"}}},
            "keys": {"k-audit": {"entities": {"EMAIL": "block", "PHONE": "allow"}}},
            "models": {"gpt-4o": {"entities": {"EMAIL": "redact"}}},
        }
    )
    assert policies.policy_for("hr", "other", "k-audit").actions == {"EMAIL": "block"}
    assert policies.policy_for("hr", "other", "k-other").actions == {"PHONE": "redact"}
    assert policies.policy_for("hr", "fast", "k-audit").actions == {"EMAIL": "redact"}
    assert policies.policy_for(None, "other", "k-audit").actions == {"EMAIL": "block"}


def test_an_override_alone_makes_the_guard_active() -> None:
    assert not _policies({}).active()
    assert _policies({"teams": {"t": {"entities": {"EMAIL": "redact"}}}}).active()
    assert not _policies({"teams": {"t": {"entities": {"EMAIL": "allow"}}}}).active()
    assert _policies({"keys": {"k": {"entities": {"SECRET": "block"}}}}).active()
    off = GuardConfig.model_validate({"models": {"m": {"entities": {"EMAIL": "block"}}}})
    assert not PolicySet.from_config(off).active()  # guard.enabled is false


def test_override_errors_name_the_bad_key() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"GATEHOUSE_GUARD__TEAMS__HR__ENTITIES__EMAIL": "hide"})
    assert "guard.teams.hr.entities.email" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"GATEHOUSE_GUARD__MODELS__M__ENTITY__EMAIL": "mask"})
    assert "guard.models.m.entity: unknown key" in str(caught.value)


def test_answers_take_redact_or_block_only() -> None:
    settings = load_settings(environ={"GATEHOUSE_GUARD__OUTPUT_ENTITIES__SECRET": "block"})
    assert settings.guard.output_entities.actions() == {"SECRET": "block"}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"GATEHOUSE_GUARD__OUTPUT_ENTITIES__EMAIL": "mask"})
    assert "guard.output_entities.email" in str(caught.value)
