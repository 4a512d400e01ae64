"""RAG answer metrics judged by a model: the prompts, the readers of the replies, the scores.

Pure: :mod:`gatehouse.evals.judge` sends the prompts and retries; here each
metric is a prompt builder, a reader that turns the judge's text into typed
verdicts (raising :class:`~gatehouse.evals.parsing.JudgeParseError` when it
cannot), and a score computed from those verdicts.

The definitions follow RAGAS's, so the figures read the same way:

- **faithfulness**: the answer's claims (extracted by the judge), each
  judged supported or not by the retrieved context; supported / all claims.
  An answer with no claims has no faithfulness (``None``, with the reason),
  where RAGAS returns NaN.
- **answer relevancy**: the judge rates from 1 to 5 how directly and
  completely the answer addresses the question; mapped to 0..1 as
  ``(r - 1) / 4``. (RAGAS compares the question with questions generated
  back from the answer by embedding similarity; one rating is cheaper and
  needs no embedding model.)
- **context precision**: each retrieved chunk judged useful or not for
  reaching the reference answer; the mean of precision@k over the ranks k of
  the useful chunks (average precision), 0 when none is useful.
- **context recall**: the reference answer split into sentences, each judged
  attributable or not to the retrieved context; attributable / all.
- **answer correctness**: the judge sorts statements into true positives
  (in the answer and the reference), false positives (only in the answer)
  and false negatives (only in the reference); ``TP / (TP + (FP + FN) / 2)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gatehouse.evals.parsing import JudgeParseError, extract_json, parse_number, parse_verdict

JUDGE_METRICS = (
    "faithfulness",
    "answer_relevancy",
    "context_precision",
    "context_recall",
    "answer_correctness",
)
SYSTEM = (
    "You are a strict evaluator. Follow the instructions exactly and reply with JSON only, "
    "no explanation."
)


def numbered(items: Sequence[str]) -> str:
    return "\n".join(f"{i}. {' '.join(item.split())}" for i, item in enumerate(items, start=1))


# -- prompts --


def claims_prompt(question: str, answer: str) -> str:
    return (
        "Break the answer into short, self-contained factual claims.\n"
        f"Question: {question}\nAnswer: {answer}\n\n"
        'Reply as JSON: {"claims": ["claim 1", "claim 2"]}. '
        'If the answer states no fact, reply {"claims": []}.'
    )


def verdicts_prompt(task: str, context: str, items: Sequence[str]) -> str:
    return (
        f"{task}\n\nContext:\n{context}\n\nStatements:\n{numbered(items)}\n\n"
        f"Reply as JSON with exactly {len(items)} verdicts, in order: "
        '{"verdicts": [{"index": 1, "verdict": "yes"}, ...]} where the verdict is "yes" or "no".'
    )


def faithfulness_prompt(contexts: Sequence[str], claims: Sequence[str]) -> str:
    task = "For each statement, answer yes if the context supports it, no otherwise."
    return verdicts_prompt(task, numbered(contexts), claims)


def context_precision_prompt(question: str, reference: str, contexts: Sequence[str]) -> str:
    task = (
        "For each statement (a retrieved passage), answer yes if it is useful to reach the "
        "reference answer to the question, no otherwise."
    )
    return verdicts_prompt(task, f"Question: {question}\nReference answer: {reference}", contexts)


def context_recall_prompt(contexts: Sequence[str], sentences: Sequence[str]) -> str:
    task = (
        "For each statement (a sentence of a reference answer), answer yes if the context "
        "contains the information it states, no otherwise."
    )
    return verdicts_prompt(task, numbered(contexts), sentences)


def relevancy_prompt(question: str, answer: str) -> str:
    return (
        "Rate how directly and completely the answer addresses the question, from 1 (not at "
        "all, or evasive) to 5 (fully and directly). Do not judge whether it is true.\n"
        f"Question: {question}\nAnswer: {answer}\n\n"
        'Reply as JSON: {"score": 4}'
    )


def correctness_prompt(question: str, answer: str, reference: str) -> str:
    return (
        "Compare the answer with the reference answer to the question. List the statements of "
        "the answer that the reference confirms (tp), the statements of the answer that the "
        "reference does not support (fp), and the statements of the reference missing from the "
        "answer (fn).\n"
        f"Question: {question}\nAnswer: {answer}\nReference: {reference}\n\n"
        'Reply as JSON: {"tp": ["..."], "fp": ["..."], "fn": ["..."]}'
    )


# -- readers --


def read_claims(text: str) -> list[str]:
    """The claims of ``{"claims": [...]}``, a bare list, or a numbered/bulleted list."""
    try:
        value = extract_json(text)
    except JudgeParseError:
        lines = _list_lines(text)
        if lines:
            return lines
        raise
    if isinstance(value, dict) and _numbered_keys(value, ("claim", "statement", "fact")):
        value = list(value.values())  # {"claim 1": "...", "claim 2": "..."}
    elif isinstance(value, dict):
        value = _first(value, ("claims", "statements", "facts", "items"))
    if not isinstance(value, list):
        raise JudgeParseError("claims are not a list")
    claims = [_statement(item) for item in value]
    return [c for c in claims if c]


def read_verdicts(text: str, count: int) -> list[bool]:
    """Exactly ``count`` yes/no verdicts, from JSON or from lines like ``2. no``."""
    error = JudgeParseError(f"expected {count} verdicts")
    verdicts: list[bool] | None
    try:
        verdicts = _verdicts_from(extract_json(text), count)
    except JudgeParseError as exc:
        verdicts, error = None, exc
    if verdicts is None:
        verdicts = _verdicts_from_lines(text, count)
    if verdicts is None:
        raise error
    return verdicts


def read_rating(text: str, low: float = 1, high: float = 5) -> float:
    """A rating from ``low`` to ``high`` mapped to 0..1; a fraction (``4/5``) is taken as is."""
    try:
        value: Any = extract_json(text)
    except JudgeParseError:
        value = text
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    number = parse_number(value)
    shared = isinstance(value, str) and re.search(r"/|out of|%", value.lower())
    if shared and 0 <= number <= 1:
        return number
    if not low <= number <= high:
        raise JudgeParseError(f"rating {number:g} is outside {low:g}..{high:g}")
    return (number - low) / (high - low)


@dataclass(frozen=True, slots=True)
class Classification:
    """Answer-correctness statement counts."""

    tp: int
    fp: int
    fn: int

    @property
    def score(self) -> float | None:
        denominator = self.tp + 0.5 * (self.fp + self.fn)
        return self.tp / denominator if denominator else None


def read_classification(text: str) -> Classification:
    """``{"tp": [...], "fp": [...], "fn": [...]}``, lists of statements or counts."""
    value = extract_json(text)
    if not isinstance(value, dict):
        raise JudgeParseError("classification is not an object")
    keys = {re.sub(r"[^a-z]", "", str(k).lower()): v for k, v in value.items()}
    counts: dict[str, int] = {}
    for name, aliases in (
        ("tp", ("tp", "truepositive", "truepositives")),
        ("fp", ("fp", "falsepositive", "falsepositives")),
        ("fn", ("fn", "falsenegative", "falsenegatives")),
    ):
        found = next((keys[a] for a in aliases if a in keys), None)
        if isinstance(found, list):
            counts[name] = sum(1 for item in found if _statement(item))
        elif found is None:
            raise JudgeParseError(f"classification lacks '{name}'")
        else:
            number = parse_number(found)
            if number < 0 or number != int(number):
                raise JudgeParseError(f"'{name}' is not a count")
            counts[name] = int(number)
    return Classification(**counts)


# -- scores --


def supported_share(verdicts: Sequence[bool]) -> float | None:
    """Share of true verdicts; ``None`` for no verdicts."""
    return sum(verdicts) / len(verdicts) if verdicts else None


def average_precision(useful: Sequence[bool]) -> float | None:
    """Mean of precision@k over the ranks k of useful items; 0 when none is, ``None`` for none."""
    if not useful:
        return None
    hits = 0
    total = 0.0
    for k, verdict in enumerate(useful, start=1):
        if verdict:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    """``text`` split into sentences (after . ! ? followed by a capital or digit)."""
    return [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if s.strip()]


# -- helpers --


def _first(value: dict[str, Any], keys: Sequence[str]) -> Any:
    lowered = {str(k).lower(): v for k, v in value.items()}
    for key in keys:
        if key in lowered:
            return lowered[key]
    lists = [v for v in value.values() if isinstance(v, list)]
    if len(lists) == 1:
        return lists[0]
    raise JudgeParseError(f"expected one of the fields {', '.join(keys)}")


def _statement(item: Any) -> str:
    if isinstance(item, str):
        return item.strip()
    if isinstance(item, dict):
        for key in ("claim", "statement", "text", "fact"):
            if isinstance(item.get(key), str):
                return str(item[key]).strip()
        # {"claim1": "...", "description": "..."}: the claim under a numbered key
        for key, value in item.items():
            if isinstance(value, str) and _numbered_keys({key: value}, ("claim", "statement")):
                return value.strip()
    raise JudgeParseError("a listed statement is not text")


def _numbered_keys(value: dict[str, Any], stems: Sequence[str]) -> bool:
    """Every key is a stem with a number (``claim 1``, ``claim_2``, ``fact3``) and holds text."""
    pattern = re.compile(rf"(?:{'|'.join(stems)})[ _-]?\d+", re.IGNORECASE)
    return bool(value) and all(
        pattern.fullmatch(str(k).strip()) and isinstance(v, str) for k, v in value.items()
    )


def _verdicts_from(value: Any, count: int) -> list[bool] | None:
    if isinstance(value, dict):
        try:
            value = _first(value, ("verdicts", "results", "answers", "labels"))
        except JudgeParseError:
            # {"1": "yes", "2": "no"}
            if value and all(str(k).strip().isdigit() for k in value):
                value = [value[k] for k in sorted(value, key=lambda k: int(str(k)))]
            else:
                return None
    if not isinstance(value, list):
        return None
    indexed: dict[int, bool] = {}
    plain: list[bool] = []
    for item in value:
        verdict = parse_verdict(item)
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and not isinstance(index, bool) and 1 <= index <= count:
            indexed[index] = verdict
        else:
            plain.append(verdict)
    if indexed and not plain and len(indexed) == count:
        return [indexed[i] for i in range(1, count + 1)]
    if not indexed and len(plain) == count:
        return plain
    raise JudgeParseError(f"expected {count} verdicts, found {len(indexed) + len(plain)}")


_LINE_ITEM = re.compile(r"^\s*(?:[-*\u2022]|\(?(\d{1,3})[.):])\s*(.+?)\s*$")


def _list_lines(text: str) -> list[str]:
    return [m[2] for line in text.splitlines() if (m := _LINE_ITEM.match(line))]


def _verdicts_from_lines(text: str, count: int) -> list[bool] | None:
    found: dict[int, bool] = {}
    for line in text.splitlines():
        match = _LINE_ITEM.match(line)
        if match and match[1]:
            index = int(match[1])
            if 1 <= index <= count and index not in found:
                try:
                    found[index] = parse_verdict(match[2])
                except JudgeParseError:
                    continue
    if len(found) == count:
        return [found[i] for i in range(1, count + 1)]
    return None
