"""Checkable answers for capability tests: each check reads a model's reply and says pass or fail.

Every check returns a :class:`Verdict` with the answer it *extracted* (the
number, the word; for code, the outcome of its tests), which is what
consistency across repeated runs compares: two replies worded differently
that give the same number are consistent. All checks are pure except
:class:`CodeTests`, which runs the model's code against assertions in the
sandbox (:mod:`gatehouse.evals.sandbox`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gatehouse.evals.answers import normalize_answer
from gatehouse.evals.parsing import JudgeParseError, extract_json, words_to_number
from gatehouse.evals.sandbox import Limits, run_python


@dataclass(frozen=True, slots=True)
class Verdict:
    passed: bool
    extracted: str
    detail: str = ""


class Check(Protocol):
    """Reads one reply; ``expected`` says in words what passes."""

    @property
    def expected(self) -> str: ...

    async def __call__(self, reply: str) -> Verdict: ...


_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> float | None:
    """The last number written in ``text`` (digits with optional thousands commas, or a word)."""
    found = _NUMBER.findall(text)
    if found:
        try:
            return float(found[-1].replace(",", "").rstrip("."))
        except ValueError:
            return None
    for word in reversed(re.findall(r"[a-zA-Z]+(?:-[a-zA-Z]+)?", text)):
        number = words_to_number(word)
        if number is not None:
            return number
    return None


@dataclass(frozen=True, slots=True)
class NumberAnswer:
    """The last number of the reply equals ``value`` (within ``tolerance``)."""

    value: float
    tolerance: float = 1e-6

    @property
    def expected(self) -> str:
        return f"{self.value:g}"

    async def __call__(self, reply: str) -> Verdict:
        number = last_number(reply)
        if number is None:
            return Verdict(False, "", "no number in the reply")
        return Verdict(abs(number - self.value) <= self.tolerance, f"{number:g}")


@dataclass(frozen=True, slots=True)
class WordAnswer:
    """The reply's answer word is one of ``accepted`` and none of the other ``choices``.

    The reply passes when an accepted word appears in it and no rival choice
    does, so "Bob" passes and "Ann or Bob" does not.
    """

    accepted: tuple[str, ...]
    choices: tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        return self.accepted[0]

    async def __call__(self, reply: str) -> Verdict:
        words = set(normalize_answer(reply).split())
        hits = [w for w in self.accepted if w.lower() in words]
        rivals = [c for c in self.choices if c.lower() in words and c not in self.accepted]
        extracted = (hits or rivals or [""])[0]
        if not hits:
            return Verdict(False, extracted, "expected answer not found")
        if rivals:
            return Verdict(False, "/".join(hits + rivals), f"also names {rivals[0]}")
        return Verdict(True, hits[0].lower())


@dataclass(frozen=True, slots=True)
class Contains:
    """The reply contains ``text`` (case-insensitive, white space collapsed)."""

    text: str

    @property
    def expected(self) -> str:
        return self.text

    async def __call__(self, reply: str) -> Verdict:
        flat = " ".join(reply.split()).lower()
        ok = " ".join(self.text.split()).lower() in flat
        return Verdict(ok, self.text if ok else flat[:80])


@dataclass(frozen=True, slots=True)
class JsonFields:
    """The reply holds a JSON object with these fields and values (more fields allowed)."""

    fields: Mapping[str, Any]

    @property
    def expected(self) -> str:
        return json.dumps(dict(self.fields), sort_keys=True)

    async def __call__(self, reply: str) -> Verdict:
        try:
            value = extract_json(reply)
        except JudgeParseError:
            return Verdict(False, "", "no JSON object in the reply")
        if not isinstance(value, dict):
            return Verdict(False, json.dumps(value)[:80], "not a JSON object")
        picked = {k: value.get(k) for k in self.fields}
        wrong = [k for k, v in self.fields.items() if not _same(picked[k], v)]
        extracted = json.dumps(picked, sort_keys=True)
        return Verdict(
            not wrong, extracted, f"wrong or missing: {', '.join(wrong)}" if wrong else ""
        )


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, str) and isinstance(got, str):
        return normalize_answer(got) == normalize_answer(want)
    if isinstance(want, int | float) and isinstance(got, int | float | str):
        try:
            return abs(float(got) - float(want)) < 1e-9
        except ValueError:
            return False
    return bool(got == want)


@dataclass(frozen=True, slots=True)
class Rule:
    """An instruction-following constraint: ``test`` on the stripped reply."""

    description: str
    test: Callable[[str], bool]

    @property
    def expected(self) -> str:
        return self.description

    async def __call__(self, reply: str) -> Verdict:
        text = reply.strip()
        return Verdict(self.test(text), text[:80])


_FENCED = re.compile(r"```(?:python|py|python3)?\s*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(reply: str) -> str:
    """The Python code of a reply: its fenced blocks joined, or the whole reply."""
    blocks = _FENCED.findall(reply)
    if blocks:
        return "\n\n".join(block.strip("\n") for block in blocks)
    return reply.strip().removeprefix("```").removesuffix("```").strip()


@dataclass(frozen=True, slots=True)
class CodeTests:
    """The reply's code, followed by ``tests`` (assertions), exits 0 in the sandbox."""

    function: str
    tests: str
    limits: Limits = field(default_factory=lambda: Limits(timeout=10.0, cpu_seconds=5))

    @property
    def expected(self) -> str:
        return f"{self.function}() passes its tests"

    async def __call__(self, reply: str) -> Verdict:
        code = extract_code(reply)
        if not re.search(rf"^\s*def\s+{re.escape(self.function)}\s*\(", code, re.MULTILINE):
            problem = f"no function named {self.function}"
            return Verdict(False, problem, problem)
        result = await run_python(f"{code}\n\n# -- tests --\n{self.tests}\n", self.limits)
        if result.timed_out:
            problem = f"timed out after {self.limits.timeout:g}s"
            return Verdict(False, problem, problem)
        if not result.ok:
            last = result.output.strip().splitlines()[-1:] or [f"exit {result.exit_code}"]
            return Verdict(False, last[0][:200], last[0][:200])
        return Verdict(True, "passes its tests")
