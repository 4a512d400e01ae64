"""Classifier hooks: a model of your own beside the rule-based checks.

A :class:`Classifier` reads one text and returns scores per category (``toxic``,
``jailbreak``, ...). It is loaded by import path from the config
(``guard.content_classifier.factory`` and ``guard.injection.classifier``,
``"package.module:factory"``): the factory is called once at start-up with no
arguments and returns the classifier. Its scores feed the same actions
(``flag`` or ``block``) and the same decision recording as the keyword and
regex rules, under the rules ``content.classifier.<category>`` and
``injection.classifier.<category>``.

``classify`` may block (a model on the CPU): the guard stage calls it in a
worker thread. An exception from it fails the request closed (503), since a
check that did not run is not a pass.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Score:
    """How strongly a text belongs to ``category``, between 0 and 1."""

    category: str
    score: float


@runtime_checkable
class Classifier(Protocol):
    def classify(self, text: str) -> Sequence[Score]: ...


class ClassifierFailed(Exception):
    """A classifier raised: the check did not run."""

    def __init__(self, rule: str, cause: BaseException) -> None:
        super().__init__(f"{rule}: {type(cause).__name__}")
        self.rule = rule


def resolve_factory(path: str) -> object:
    """The object ``"package.module:name"`` names; raises ``ValueError`` saying why not."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{path!r} is not 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from None
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{path!r} is not callable")
    return target


def load_classifier(path: str) -> Classifier:
    """Call the factory ``path`` names; raises ``ValueError`` unless it gives a classifier."""
    factory = resolve_factory(path)
    assert callable(factory)
    classifier = factory()
    if not isinstance(classifier, Classifier):
        raise ValueError(f"{path!r} returned {type(classifier).__name__}, which has no classify()")
    return classifier


@dataclass(frozen=True, slots=True)
class ClassifierRule:
    """A loaded classifier, the action its findings take and the least score that acts."""

    classifier: Classifier
    action: Literal["flag", "block"]
    min_score: float = 0.5
    prefix: str = "content"  # rules are ``<prefix>.classifier.<category>``

    def rule(self, category: str) -> str:
        return f"{self.prefix}.classifier.{category}"

    def findings(self, text: str) -> list[Score]:
        """The categories scoring at least ``min_score``, highest first.

        Raises :class:`ClassifierFailed` if the classifier does."""
        try:
            scores = list(self.classifier.classify(text))
        except Exception as exc:
            raise ClassifierFailed(self.rule("error"), exc) from exc
        hits = [s for s in scores if s.score >= self.min_score]
        hits.sort(key=lambda s: -s.score)
        return hits
