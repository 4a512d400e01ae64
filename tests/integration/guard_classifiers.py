"""Tiny classifiers for the guard's classifier hooks, loaded by the test server
through ``guard.content_classifier.factory`` / ``guard.injection.classifier``."""

from __future__ import annotations

from gatehouse.guard.classifier import Score


class KeywordScorer:
    """Scores each category by the share of its keywords found in the text."""

    def __init__(self, categories: dict[str, tuple[str, ...]]) -> None:
        self.categories = categories

    def classify(self, text: str) -> list[Score]:
        lowered = text.lower()
        if "break the classifier" in lowered:
            raise RuntimeError("the classifier fell over")
        scores = []
        for category, words in self.categories.items():
            found = sum(1 for word in words if word in lowered)
            scores.append(Score(category, found / len(words)))
        return scores


def toxicity() -> KeywordScorer:
    return KeywordScorer({"insult": ("nitwit", "dimwit"), "threat": ("or else",)})


def jailbreaks() -> KeywordScorer:
    return KeywordScorer({"grandma": ("grandma", "bedtime story", "napalm")})


NOT_CALLABLE = 42
