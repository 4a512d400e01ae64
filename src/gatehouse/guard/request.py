"""One request under a policy: its texts protected, its placeholders restored.

:class:`RequestGuard` applies a :class:`~gatehouse.guard.policy.Policy` to the
texts of one request (injection signals, content categories, then entities),
keeps that request's placeholders and puts the masked values back in the
answer; :class:`StreamRestorer` does it for streamed text. A guard is created
per request and thrown away with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from gatehouse.guard.classifier import ClassifierRule
from gatehouse.guard.content import Applied, ContentStreamFilter
from gatehouse.guard.content import apply as apply_content
from gatehouse.guard.entities import Entity
from gatehouse.guard.injection import Signal, injection_signals
from gatehouse.guard.policy import Action, Policy, strength
from gatehouse.guard.scanner import detect

_PLACEHOLDER = re.compile(r"\[([A-Z][A-Z_]*?)_(\d{1,6})\]")


@dataclass(frozen=True, slots=True)
class Finding:
    """An entity and what the policy did about it."""

    entity: Entity
    action: Action


class PolicyViolation(Exception):
    """A ``block`` rule fired. Carries the rule and what it found (``a US_SSN
    value``), never the value itself."""

    def __init__(self, rule: str, subject: str) -> None:
        super().__init__(f"{rule}: {subject}")
        self.rule = rule
        self.subject = subject


class RequestGuard:
    """Applies a policy to the texts of one request and restores its masked values."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.findings: list[Finding] = []
        # Each (rule, action) that acted on this request, in order, once.
        self._decisions: dict[tuple[str, Action], None] = {}
        self._stream_filters: list[ContentStreamFilter] = []
        self._types = policy.active_types()
        self._input_rules = policy.content.input_rules()
        self._output_rules = policy.output_rules()
        self._placeholders: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._taken: set[str] = set()

    @property
    def masked(self) -> bool:
        """Whether any value was masked, so the response needs restoring."""
        return bool(self._originals)

    def reserve(self, text: str) -> None:
        """Keep placeholders that ``text`` already holds (``[EMAIL_1]`` written by the
        user) from being issued, so restoring never replaces what the user wrote.
        Call it on every text of the request before :meth:`protect`."""
        if "[" in text:
            self._taken.update(match.group() for match in _PLACEHOLDER.finditer(text))

    def check(self, text: str) -> list[Finding]:
        """What the policy would do to ``text``, without changing any state."""
        if not self._types:
            return []
        return [
            Finding(entity, self.policy.action(entity.type))
            for entity in detect(text, self._types, self.policy.recognizers)
            if entity.score >= self.policy.min_score
        ]

    def decisions(self) -> tuple[tuple[str, Action], ...]:
        """Each rule that acted on the request or its answer so far, with its action
        (``("entities.EMAIL", "mask")``, ``("content.weapons", "block")``), once."""
        found = dict(self._decisions)
        for stream in self._stream_filters:
            for rule in stream.redacted:
                found[(rule, "redact")] = None
            if stream.blocked is not None:
                found[(stream.blocked, "block")] = None
        return tuple(found)

    def action(self) -> Action:
        """The strongest action taken so far (``allow`` when none)."""
        best: Action = "allow"
        for _, action in self.decisions():
            if strength(action) > strength(best):
                best = action
        return best

    def _note(self, applied: Applied) -> None:
        for rule in applied.redacted:
            self._decisions[(rule, "redact")] = None
        if applied.blocked is not None:
            self._decisions[(applied.blocked, "block")] = None

    def check_injection(self, text: str, role: str) -> list[Signal]:
        """Prompt-injection signals in a message of ``role`` that the policy acts on:
        each kind found is recorded as a decision (``injection.<kind>``); raises
        :class:`PolicyViolation` when the action is ``block``."""
        injection = self.policy.injection
        if injection.action == "off" or role not in injection.roles:
            return []
        signals = [s for s in injection_signals(text) if s.score >= injection.min_score]
        action: Action = "block" if injection.action == "block" else "flag"
        if signals:
            for signal in signals:
                self._decisions[(injection.rule(signal.kind), action)] = None
            if action == "block":
                kind = signals[0].kind
                raise PolicyViolation(injection.rule(kind), f"a prompt-injection signal ({kind})")
        if injection.classifier is not None:
            self._classify(injection.classifier, text, "a prompt-injection signal")
        return signals

    def check_retrieved(self, text: str) -> bool:
        """Prompt-injection signals in a retrieved passage, acted on by
        ``injection.retrieved``: each kind found is recorded (``injection.<kind>``
        with ``flag``, ``block`` or ``wrap``); raises :class:`PolicyViolation` for
        ``block``. Whether the passage is to be wrapped as data."""
        injection = self.policy.injection
        action = injection.retrieved
        if action == "off":
            return False
        signals = [s for s in injection_signals(text) if s.score >= injection.min_score]
        for signal in signals:
            self._decisions[(injection.rule(signal.kind), action)] = None
        if signals and action == "block":
            kind = signals[0].kind
            raise PolicyViolation(
                injection.rule(kind), f"a retrieved passage with a prompt-injection signal ({kind})"
            )
        return bool(signals) and action == "wrap"

    def _classify(self, rule: ClassifierRule, text: str, what: str) -> None:
        """Records each category ``rule``'s classifier finds in ``text``; raises
        :class:`PolicyViolation` when its action is ``block``."""
        scores = rule.findings(text)
        for score in scores:
            self._decisions[(rule.rule(score.category), rule.action)] = None
        if scores and rule.action == "block":
            category = scores[0].category
            raise PolicyViolation(rule.rule(category), f"{what} (classifier category '{category}')")

    def flags(self) -> list[str]:
        """The rules whose action was ``flag``, for the response header."""
        return [rule for rule, action in self.decisions() if action == "flag"]

    def protect(self, text: str) -> str:
        """``text`` with content categories applied, then redacted and masked values
        replaced; raises :class:`PolicyViolation` if a ``block`` rule fires."""
        if self._input_rules:
            applied = apply_content(self._input_rules, text)
            self._note(applied)
            if applied.blocked is not None:
                category = applied.blocked.removeprefix("content.")
                raise PolicyViolation(applied.blocked, f"content in category '{category}'")
            text = applied.text
        if self.policy.content_classifier is not None:
            self._classify(self.policy.content_classifier, text, "content")
        findings = self.check(text)
        if not findings:
            return text
        for finding in findings:
            if finding.action == "block":
                self.findings.append(finding)
                kind = finding.entity.type
                self._decisions[(self.policy.rule(kind), "block")] = None
                raise PolicyViolation(self.policy.rule(kind), f"a {kind} value")
        self.findings.extend(findings)
        for finding in findings:
            self._decisions[(self.policy.rule(finding.entity.type), finding.action)] = None
        parts: list[str] = []
        position = 0
        for finding in findings:
            entity = finding.entity
            parts.append(text[position : entity.start])
            value = text[entity.start : entity.end]
            if finding.action == "redact":
                parts.append(f"[{entity.type}]")
            else:
                parts.append(self._placeholder(entity.type, value))
            position = entity.end
        parts.append(text[position:])
        return "".join(parts)

    def restore(self, text: str, *, escape: Callable[[str], str] | None = None) -> str:
        """``text`` with this request's placeholders replaced by their values, each
        passed through ``escape`` if given (to put it inside a JSON string)."""
        if not self._originals or "[" not in text:
            return text
        originals = self._originals

        def value(match: re.Match[str]) -> str:
            original = originals.get(match.group())
            if original is None:
                return match.group()
            return original if escape is None else escape(original)

        return _PLACEHOLDER.sub(value, text)

    @property
    def filters_output(self) -> bool:
        """Whether answers go through content categories."""
        return bool(self._output_rules)

    def filter_output(self, text: str) -> Applied:
        """An answer's text after the output content categories."""
        if not self._output_rules:
            return Applied(text)
        applied = apply_content(self._output_rules, text)
        self._note(applied)
        return applied

    def output_filter(self) -> ContentStreamFilter | None:
        """A filter for one streamed choice, or ``None`` when no category checks output."""
        if not self._output_rules:
            return None
        stream = ContentStreamFilter(self._output_rules, window=self.policy.content.window)
        self._stream_filters.append(stream)
        return stream

    def restorer(self, *, escape: Callable[[str], str] | None = None) -> StreamRestorer:
        """A restorer for one stream of text pieces (see :meth:`restore` for ``escape``)."""
        return StreamRestorer(self, escape=escape)

    def _placeholder(self, entity_type: str, value: str) -> str:
        key = (entity_type, value)
        placeholder = self._placeholders.get(key)
        if placeholder is None:
            count = self._counts.get(entity_type, 0)
            placeholder = ""
            while not placeholder or placeholder in self._taken:
                count += 1
                placeholder = f"[{entity_type}_{count}]"
            self._counts[entity_type] = count
            self._placeholders[key] = placeholder
            self._originals[placeholder] = value
        return placeholder

    def could_be_placeholder(self, tail: str) -> bool:
        """Whether ``tail`` is the start of one of this request's placeholders."""
        return any(p.startswith(tail) for p in self._originals)


class StreamRestorer:
    """Restores placeholders in a stream of text pieces, one per choice.

    A placeholder may arrive split across pieces (``[EMA`` then ``IL_1]``): the
    tail of the text that could still become a placeholder is held back until
    the next piece decides it, so at most one placeholder's length is delayed.
    """

    def __init__(self, guard: RequestGuard, *, escape: Callable[[str], str] | None = None) -> None:
        self._guard = guard
        self._escape = escape
        self._held = ""

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = ""
        cut = text.rfind("[")
        if cut != -1 and "]" not in text[cut:] and self._guard.could_be_placeholder(text[cut:]):
            text, self._held = text[:cut], text[cut:]
        return self._guard.restore(text, escape=self._escape)

    def flush(self) -> str:
        """What is still held back, at the end of the stream."""
        held, self._held = self._held, ""
        return held


def strongest(findings: list[Finding]) -> Action:
    """The strongest action among ``findings`` (``allow`` for none)."""
    best: Action = "allow"
    for finding in findings:
        if strength(finding.action) > strength(best):
            best = finding.action
    return best
