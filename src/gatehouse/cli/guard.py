"""``gatehouse guard``: what the active guard policy would do to a text.

``gatehouse guard "text"`` prints each finding and the text as it would go
upstream; ``--team``, ``--key`` and ``--model`` pick the policy of such a call.
``gatehouse guard --json --jsonl`` reads stdin, one JSON string per line, and
prints one JSON object per line, in order::

    {"entities": [{"type", "start", "end", "score"}, ...],
     "signals": [{"kind", "start", "end", "score"}, ...],
     "action": "allow" | "flag" | "redact" | "mask" | "block",
     "rule": "entities.US_SSN" | null, "text": "..." | null}

``entities`` lists every detection (of all types, whatever the policy), with
character offsets into the decoded text, end exclusive, and ``signals`` every
prompt-injection signal (the text read as a user message); ``action`` is the
strongest the policy takes (content categories included), ``rule`` the rule
that blocks (``entities.US_SSN``, ``content.weapons``), and ``text`` the
text as it would reach the upstream (``null`` when blocked).
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

import orjson

from gatehouse.core.config import Settings
from gatehouse.guard import Policy, PolicySet, PolicyViolation, RequestGuard, detect
from gatehouse.guard.classifier import ClassifierFailed
from gatehouse.guard.injection import injection_signals


class InputError(Exception):
    """A line of ``--jsonl`` input that is not a JSON string; the message names it."""


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser("guard", help="show what the guard policy would do to a text")
    parser.add_argument("text", nargs="?", help="the text (with --jsonl: read stdin instead)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--jsonl", action="store_true", help="read stdin, one JSON string per line")
    parser.add_argument("--team", help="the policy for a caller of this team (guard.teams)")
    parser.add_argument("--key", help="the policy for a caller with this key id (guard.keys)")
    parser.add_argument("--model", help="the policy for calls to this model (guard.models)")


def run(settings: Settings, args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> None:
    """Raises ``ValueError`` for a usage error, :class:`InputError` for bad input."""
    policies = PolicySet.from_config(settings.guard, settings.aliases)
    policy = policies.policy_for(args.team, args.model, args.key)
    if args.jsonl:
        if args.text is not None:
            raise ValueError("--jsonl reads stdin: give no text argument")
        for number, line in enumerate(stdin, start=1):
            stdout.write(_json(decide(_decode(line, number), policy)))
            stdout.flush()
        return
    text = args.text
    if text is None:
        if stdin.isatty():
            raise ValueError("no text given: pass one as an argument or on stdin")
        text = stdin.read()
    decision = decide(text, policy)
    if args.json:
        stdout.write(_json(decision))
        return
    stdout.write(_table(text, decision, enabled=settings.guard.enabled))


def decide(text: str, policy: Policy) -> dict[str, Any]:
    """The JSON object for one text: every detection, then what the policy does."""
    entities = [entity.to_dict() for entity in detect(text, recognizers=policy.recognizers)]
    signals = [
        {"kind": s.kind, "start": s.start, "end": s.end, "score": s.score}
        for s in injection_signals(text)
    ]
    guard = RequestGuard(policy)
    try:
        guard.check_injection(text, "user")
        protected: str | None = guard.protect(text)
        rule = None
    except PolicyViolation as violation:
        protected, rule = None, violation.rule
    except ClassifierFailed as failure:
        # The gateway refuses such a request (503): nothing would be sent.
        protected, rule = None, failure.rule
    return {
        "entities": entities,
        "signals": signals,
        "action": guard.action(),
        "rule": rule,
        "text": protected,
    }


def _decode(line: str, number: int) -> str:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise InputError(f"stdin line {number}: not valid JSON") from None
    if not isinstance(value, str):
        raise InputError(f"stdin line {number}: a JSON {type(value).__name__}, not a string")
    return value


def _json(decision: dict[str, Any]) -> str:
    return orjson.dumps(decision).decode() + "\n"


def _table(text: str, decision: dict[str, Any], *, enabled: bool) -> str:
    policy_note = "" if enabled else " (guard.enabled is false: the gateway would send it as is)"
    lines = []
    for entity in decision["entities"]:
        value = text[entity["start"] : entity["end"]]
        lines.append(
            f"{entity['type']:12} {entity['start']:>5}-{entity['end']:<5} "
            f"{entity['score']:.2f}  {_preview(value)}"
        )
    for signal in decision["signals"]:
        value = text[signal["start"] : signal["end"]]
        lines.append(
            f"{'INJECTION':12} {signal['start']:>5}-{signal['end']:<5} "
            f"{signal['score']:.2f}  {signal['kind']}: {_preview(value)}"
        )
    if not lines:
        lines.append("nothing found")
    lines.append(f"action: {decision['action']}{policy_note}")
    if decision["rule"] is not None:
        lines.append(f"blocked by rule {decision['rule']}: 400 content_policy_violation")
    else:
        lines.append(f"sent upstream: {decision['text']}")
    return "\n".join(lines) + "\n"


def _preview(value: str) -> str:
    """A finding shown on one line, long values (private keys) shortened."""
    flat = value.replace("\n", "\\n")
    return flat if len(flat) <= 60 else f"{flat[:28]}...{flat[-28:]}"
