"""Detectors of credentials: provider keys, tokens, JWTs, private keys, assigned secrets.

Provider keys have fixed prefixes and alphabets, so a pattern finds them; a
placeholder that has the prefix (``sk-...``, ``sk-xxxxxxxx``, ``<your-api-key>``,
AWS's documented ``...EXAMPLE`` key) is told apart by its low entropy or its
words. A value assigned to a name like ``password`` or ``api_key`` is a secret
only when it looks random: long enough, mixed characters, high entropy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from gatehouse.guard.entities import SECRET, Entity

# One alternation, so a text is walked once for every provider format. Longer
# prefixes come first (sk-ant- before sk-).
_PROVIDER_KEY = re.compile(
    r"(?<![\w-])(?:"
    r"sk-ant-(?:api|admin)\d\d-[A-Za-z0-9_-]{32,}"
    r"|sk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,255}"
    r"|github_pat_[A-Za-z0-9_]{22,255}"
    r"|xox[baprse]-[A-Za-z0-9-]{10,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{24,}"
    r"|glpat-[0-9A-Za-z_-]{20,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|ya29\.[0-9A-Za-z_-]{30,}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}"
    r")(?![\w-])"
)
# The texts every provider key, JWT or PEM block contains: a cheap test that
# lets most prompts skip the pattern.
_KEY_MARKERS = ("sk-", "AKIA", "ASIA", "ABIA", "ACCA", "gh", "github_pat_", "xox", "AIza",
                "_live_", "_test_", "glpat-", "hf_", "ya29.", "eyJ")  # fmt: skip

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z]+ )*)PRIVATE KEY(?: BLOCK)?-----"
    r"[\s\S]{16,}?"
    r"-----END \1PRIVATE KEY(?: BLOCK)?-----"
)

_SECRET_NAME = (
    r"(?:password|passwd|passphrase|pwd|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|auth[_-]?key|private[_-]?key|credentials?|client[_-]?secret)"
)
# NAME = value, NAME: value, "NAME": "value", NAME=>value, export NAME=value.
# Matched against the lower-cased text: an IGNORECASE alternation is ten times slower.
_ASSIGNED = re.compile(
    _SECRET_NAME + r"[\w.-]*[\"']?\s*(?::=|=>|[:=])\s*[\"'`]?"
    r"([A-Za-z0-9_+/=!@#$%^&*.~-]{8,200})"
)
# The password of a URL's user info: scheme://user:PASSWORD@host.
_URL_PASSWORD = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:([^\s:/@]{6,200})@")
_ASSIGNED_ANY_CASE = re.compile(_ASSIGNED.pattern, re.IGNORECASE)
_BEARER = re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{20,}=*)")
_PLACEHOLDER_WORDS = re.compile(
    r"(?i)example|your|placeholder|changeme|change_me|redacted|dummy|sample|xxxx|\*\*\*|\.\.\."
    r"|password|passw0rd|qwerty|letmein"
    r"|test(?:ing)?[_-]?(?:key|token|secret|password)|secret[_-]?key[_-]?here|insert|replace"
)
_CODE_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|[A-Za-z_]+")


def entropy(value: str) -> float:
    """Shannon entropy, bits per character."""
    counts: dict[str, int] = {}
    for char in value:
        counts[char] = counts.get(char, 0) + 1
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


def _looks_random(value: str, *, minimum: float) -> bool:
    if _PLACEHOLDER_WORDS.search(value):
        return False
    return entropy(value) >= minimum


def provider_keys(text: str) -> Iterator[Entity]:
    if any(marker in text for marker in _KEY_MARKERS):
        for match in _PROVIDER_KEY.finditer(text):
            value = match.group()
            # The part after the prefix must look random: "sk-xxxxxxxxxxxxxxxxxxxxxxxx"
            # and the documented AKIAIOSFODNN7EXAMPLE must not fire.
            body = value[value.find("-") + 1 :] if value.startswith("sk-") else value[4:]
            if _looks_random(body, minimum=3.0):
                yield Entity(SECRET, match.start(), match.end(), 0.99)
    if "-----BEGIN" in text:
        for match in _PEM.finditer(text):
            yield Entity(SECRET, match.start(), match.end(), 1.0)


def assigned_secrets(text: str) -> Iterator[Entity]:
    """High-entropy values given to a password/secret/token/key name, and bearer tokens."""
    lowered = text.lower()
    # A character whose lower case is longer would move the offsets: match as is.
    same_length = len(lowered) == len(text)
    pattern = _ASSIGNED if same_length else _ASSIGNED_ANY_CASE
    for match in pattern.finditer(lowered if same_length else text):
        start = match.start(1)
        value = text[start : match.end(1)].rstrip(".")
        if not _assigned_value_is_secret(value):
            continue
        yield Entity(SECRET, start, start + len(value), 0.8)
    if "://" in text:
        for match in _URL_PASSWORD.finditer(text):
            value = match.group(1)
            if _assigned_value_is_secret(value):
                # Above an email's score: "user:pw@host" must not read as an address.
                yield Entity(SECRET, match.start(1), match.end(1), 0.97)
    for match in _BEARER.finditer(text):
        value = match.group(1)
        if _looks_random(value, minimum=3.5):
            yield Entity(SECRET, match.start(1), match.end(1), 0.85)


def _assigned_value_is_secret(value: str) -> bool:
    if len(value) < 8 or value.isdigit() or _CODE_LIKE.fullmatch(value):
        return False
    has_letter = any(char.isalpha() for char in value)
    has_other = any(not char.isalpha() for char in value)
    if not (has_letter and has_other):
        return False
    return _looks_random(value, minimum=3.0)


def assignment_hint(text: str) -> bool:
    """Whether :func:`assigned_secrets` can find anything: a cheap lower-cased scan."""
    lowered = text.lower()
    return any(
        word in lowered
        for word in ("pass", "pwd", "secret", "token", "key", "credential", "bearer", "://")
    )
