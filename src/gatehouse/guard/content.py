"""Content policy: categories of text that may not pass, by keyword and regex rules.

A category (``violence``, ``internal-codenames``, ...) has keywords (matched
whole-word, case-insensitively) and regular expressions, an action (``block``
or ``redact``) and where it applies (the request, the answer, or both).

On a request, a ``block`` category refuses it and a ``redact`` one replaces
each match by ``[REDACTED:category]``. On an answer, ``block`` cuts it at the
first match (the caller sees ``finish_reason: content_filter``) and
``redact`` replaces matches. A streamed answer is checked as it streams:
:class:`ContentStreamFilter` holds back the last ``window`` characters so a
match split across chunks is still caught; a match longer than the window
may slip through.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from gatehouse.guard.scanner import detect

ContentAction = Literal["block", "redact"]
# Characters of already-sent text kept as context, so a keyword's word
# boundary is judged with the character before it.
_CONTEXT = 16


class Rule(Protocol):
    """What :func:`apply` and :class:`ContentStreamFilter` check text against: a
    content category, or the entity rules on answers."""

    def hits(self, text: str, start: int) -> Iterator[ContentHit]: ...


@dataclass(frozen=True, slots=True)
class ContentRule:
    """One category, compiled."""

    name: str
    pattern: re.Pattern[str]
    action: ContentAction
    on_input: bool = True
    on_output: bool = True

    @classmethod
    def build(
        cls,
        name: str,
        *,
        keywords: Sequence[str] = (),
        patterns: Sequence[str] = (),
        action: ContentAction = "block",
        on_input: bool = True,
        on_output: bool = True,
    ) -> ContentRule:
        """Raises ``re.error`` for a pattern that does not compile."""
        parts = [rf"(?<!\w){re.escape(k)}(?!\w)" for k in keywords if k]
        parts += [f"(?:{p})" for p in patterns]
        if not parts:
            raise ValueError(f"content category {name!r} has no keywords or patterns")
        pattern = re.compile("|".join(parts), re.IGNORECASE)
        return cls(name, pattern, action, on_input, on_output)

    @property
    def rule(self) -> str:
        return f"content.{self.name}"

    @property
    def replacement(self) -> str:
        return f"[REDACTED:{self.name}]"

    def hits(self, text: str, start: int) -> Iterator[ContentHit]:
        for match in self.pattern.finditer(text, start):
            if match.end() > match.start():
                yield ContentHit(
                    self.rule, self.action, self.replacement, match.start(), match.end()
                )


@dataclass(frozen=True, slots=True)
class EntityRules:
    """Entity types acted on in answers: each value found is replaced by
    ``[TYPE]`` (``redact``) or cuts the answer (``block``); rules ``output.TYPE``."""

    actions: Mapping[str, ContentAction]
    min_score: float = 0.0

    def hits(self, text: str, start: int) -> Iterator[ContentHit]:
        actions = self.actions
        for entity in detect(text, actions.keys()):
            if entity.start >= start and entity.score >= self.min_score:
                kind = entity.type
                yield ContentHit(
                    f"output.{kind}", actions[kind], f"[{kind}]", entity.start, entity.end
                )


@dataclass(frozen=True, slots=True)
class ContentHit:
    """A match: the rule that found it (``content.weapons``), what to do, and where."""

    rule: str
    action: ContentAction
    replacement: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ContentPolicy:
    rules: tuple[ContentRule, ...] = ()
    window: int = 64
    # Split once: each request asks for them.
    _input: tuple[ContentRule, ...] = field(init=False, repr=False, compare=False)
    _output: tuple[ContentRule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_input", tuple(r for r in self.rules if r.on_input))
        object.__setattr__(self, "_output", tuple(r for r in self.rules if r.on_output))

    def input_rules(self) -> tuple[ContentRule, ...]:
        return self._input

    def output_rules(self) -> tuple[ContentRule, ...]:
        return self._output


def find(rules: Sequence[Rule], text: str, start: int = 0) -> list[ContentHit]:
    """Every match of ``rules`` in ``text`` from ``start``, in order, none overlapping
    (the earlier match wins; at one position, the longer, then the first rule)."""
    hits = [hit for rule in rules for hit in rule.hits(text, start)]
    hits.sort(key=lambda h: (h.start, -h.end))
    kept: list[ContentHit] = []
    for hit in hits:
        if not kept or hit.start >= kept[-1].end:
            kept.append(hit)
    return kept


@dataclass(frozen=True, slots=True)
class Applied:
    """Text after a content check: what may pass, and the block that stopped it."""

    text: str
    blocked: str | None = None  # the rule that cut it (``content.weapons``)
    redacted: tuple[str, ...] = ()  # the rules that replaced something


def apply(rules: Sequence[Rule], text: str) -> Applied:
    """``text`` with ``redact`` matches replaced, cut before the first ``block`` match."""
    hits = find(rules, text)
    if not hits:
        return Applied(text)
    parts: list[str] = []
    position = 0
    redacted: list[str] = []
    for hit in hits:
        parts.append(text[position : hit.start])
        if hit.action == "block":
            return Applied("".join(parts), hit.rule, tuple(redacted))
        parts.append(hit.replacement)
        redacted.append(hit.rule)
        position = hit.end
    parts.append(text[position:])
    return Applied("".join(parts), None, tuple(redacted))


@dataclass
class ContentStreamFilter:
    """Checks one streamed choice's text as it arrives, holding back ``window`` characters.

    :meth:`feed` returns the text that may be sent now; once a ``block`` rule
    fires, :attr:`blocked` is set and everything after the match is dropped.
    """

    rules: Sequence[Rule]
    window: int = 64
    blocked: str | None = None  # the rule that cut the stream
    redacted: set[str] = field(default_factory=set)  # the rules that replaced something
    _sent_tail: str = ""
    _held: str = field(default="")

    def feed(self, piece: str) -> str:
        if self.blocked is not None:
            return ""
        self._held += piece
        return self._release(final=False)

    def flush(self) -> str:
        """The rest, at the end of the stream."""
        if self.blocked is not None:
            return ""
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        context = self._sent_tail
        text = context + self._held
        safe = len(text) if final else max(len(context), len(text) - self.window)
        parts: list[str] = []
        position = len(context)
        for hit in find(self.rules, text, len(context)):
            if hit.action == "block":
                # A match is a match even before the window closes on it.
                parts.append(text[position : hit.start])
                self.blocked = hit.rule
                self._held = ""
                return "".join(parts)
            if hit.end > safe:
                # It may still grow with the next piece: hold it back whole.
                safe = min(safe, hit.start)
                break
            parts.append(text[position : hit.start])
            parts.append(hit.replacement)
            self.redacted.add(hit.rule)
            position = hit.end
        safe = max(safe, position)
        parts.append(text[position:safe])
        out = "".join(parts)
        self._held = text[safe:]
        self._sent_tail = (self._sent_tail + text[len(context) : safe])[-_CONTEXT:]
        return out
