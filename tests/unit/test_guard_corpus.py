"""The guard's detectors against the labelled corpus in ``tests/fixtures/guard``.

``positives.jsonl`` holds texts with the expected entity spans, ``negatives.jsonl``
hard negatives where nothing may fire. ``bench/guard_detection.py`` prints the
same figures as a table.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from gatehouse.guard import ENTITY_TYPES, detect

CORPUS = Path(__file__).resolve().parent.parent / "fixtures" / "guard"


def _load(name: str) -> list[dict[str, object]]:
    lines = (CORPUS / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_the_corpus_labels_are_well_formed() -> None:
    for record in _load("positives.jsonl") + _load("negatives.jsonl"):
        text = str(record["text"])
        labels = record["entities"]
        assert isinstance(labels, list)
        for label in labels:
            assert label["type"] in ENTITY_TYPES
            value = text[label["start"] : label["end"]]
            assert value, (text, label)
            assert value == value.strip(), (text, label)


def test_precision_and_recall_on_the_corpus_meet_the_targets() -> None:
    """Span-exact: a finding is right only with the labelled type, start and end."""
    hits: Counter[str] = Counter()
    found: Counter[str] = Counter()
    labelled: Counter[str] = Counter()
    for record in _load("positives.jsonl") + _load("negatives.jsonl"):
        labels = record["entities"]
        assert isinstance(labels, list)
        expected = {(e["type"], e["start"], e["end"]) for e in labels}
        got = {(e.type, e.start, e.end) for e in detect(str(record["text"]))}
        for kind, _, _ in got:
            found[kind] += 1
        for kind, _, _ in expected:
            labelled[kind] += 1
        for kind, _, _ in got & expected:
            hits[kind] += 1
    for kind in ENTITY_TYPES:
        assert labelled[kind] >= 15, f"too few {kind} examples to measure"
        assert hits[kind] / found[kind] >= 0.95, f"{kind} precision"
        assert hits[kind] / labelled[kind] >= 0.95, f"{kind} recall"


def test_at_most_two_percent_of_negatives_fire() -> None:
    negatives = _load("negatives.jsonl")
    fired = [r["text"] for r in negatives if detect(str(r["text"]))]
    assert len(fired) / len(negatives) <= 0.02, fired
