"""Classifier hooks: loaded by import path, validated at start-up, findings acted on."""

from __future__ import annotations

import pytest

from gatehouse.cli.guard import decide
from gatehouse.core.config import GuardConfig, load_settings
from gatehouse.core.errors import ConfigError
from gatehouse.guard import Policy, PolicyViolation, RequestGuard
from gatehouse.guard.classifier import ClassifierFailed, ClassifierRule, load_classifier
from tests.integration.guard_classifiers import KeywordScorer

FACTORY = "tests.integration.guard_classifiers:toxicity"


@pytest.mark.parametrize(
    ("variable", "path", "reason"),
    [
        ("GUARD__CONTENT_CLASSIFIER__FACTORY", "no_such_module_x:make", "cannot import"),
        ("GUARD__CONTENT_CLASSIFIER__FACTORY", "tests.integration.guard_classifiers", "not "),
        ("GUARD__CONTENT_CLASSIFIER__FACTORY", "tests.integration.guard_classifiers:nope", "no "),
        ("GUARD__INJECTION__CLASSIFIER", "tests.integration.guard_classifiers:NOT_CALLABLE", ""),
    ],
)
def test_a_bad_import_path_is_a_config_error_naming_the_key(
    variable: str, path: str, reason: str
) -> None:
    environ = {"GATEHOUSE_GUARD__ENABLED": "true", f"GATEHOUSE_{variable}": path}
    if "INJECTION" in variable:
        environ["GATEHOUSE_GUARD__INJECTION__ACTION"] = "flag"
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    key = variable.lower().replace("__", ".")
    assert key in str(caught.value)
    assert reason in str(caught.value)


def test_an_injection_classifier_needs_an_action() -> None:
    with pytest.raises(ConfigError, match=r"guard\.injection"):
        load_settings(environ={"GATEHOUSE_GUARD__INJECTION__CLASSIFIER": FACTORY})


def test_a_factory_must_return_a_classifier() -> None:
    with pytest.raises(ValueError, match="has no classify"):
        load_classifier("tests.integration.guard_classifiers:KeywordScorer.__name__.upper")


def test_policy_loads_the_classifiers_from_config() -> None:
    config = GuardConfig.model_validate(
        {
            "enabled": True,
            "content_classifier": {"factory": FACTORY, "action": "flag", "min_score": 0.4},
            "injection": {"action": "block", "classifier": FACTORY},
        }
    )
    policy = Policy.from_config(config)
    assert policy.active()
    assert policy.blocking
    assert policy.content_classifier is not None
    assert isinstance(policy.content_classifier.classifier, KeywordScorer)
    assert policy.injection.classifier is not None
    assert policy.injection.classifier.action == "block"


def _rule(action: str, prefix: str = "content") -> ClassifierRule:
    scorer = KeywordScorer({"insult": ("nitwit", "dimwit"), "spam": ("buy now",)})
    return ClassifierRule(scorer, "block" if action == "block" else "flag", 0.5, prefix)


def test_content_classifier_block_names_the_category_not_the_text() -> None:
    guard = RequestGuard(Policy(content_classifier=_rule("block")))
    assert guard.protect("a polite question") == "a polite question"
    with pytest.raises(PolicyViolation) as caught:
        guard.protect("you nitwit, buy now")
    # spam scores 1.0, insult 0.5: both act, the surest names the refusal.
    assert caught.value.rule == "content.classifier.spam"
    assert "nitwit" not in str(caught.value)
    assert guard.decisions() == (
        ("content.classifier.spam", "block"),
        ("content.classifier.insult", "block"),
    )


def test_content_classifier_flag_records_and_passes() -> None:
    guard = RequestGuard(Policy(content_classifier=_rule("flag")))
    assert guard.protect("buy now") == "buy now"
    assert guard.flags() == ["content.classifier.spam"]


def test_a_raising_classifier_is_reported_not_swallowed() -> None:
    guard = RequestGuard(Policy(content_classifier=_rule("block")))
    with pytest.raises(ClassifierFailed) as caught:
        guard.protect("break the classifier")
    assert caught.value.rule == "content.classifier.error"


def test_the_cli_reports_a_failed_classifier_as_refused() -> None:
    decision = decide("break the classifier", Policy(content_classifier=_rule("block")))
    assert decision["rule"] == "content.classifier.error"
    assert decision["text"] is None
