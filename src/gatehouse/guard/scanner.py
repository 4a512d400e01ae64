"""All detectors run over one text, overlaps resolved: what ``detect`` returns."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

from gatehouse.guard import pii, secrets
from gatehouse.guard.entities import (
    CREDIT_CARD,
    EMAIL,
    ENTITY_TYPES,
    IBAN,
    IP_ADDRESS,
    PHONE,
    SECRET,
    US_SSN,
    Entity,
)
from gatehouse.guard.recognizers import Recognizer

Detector = Callable[[str], Iterator[Entity]]

# Detectors by the type they report. The digit-based ones are skipped for a
# text without digits; the assignment rule for a text without a secret-like name.
_DETECTORS: tuple[tuple[str, Detector, bool], ...] = (
    (SECRET, secrets.provider_keys, False),
    (IBAN, pii.ibans, True),
    (CREDIT_CARD, pii.cards, True),
    (US_SSN, pii.ssns, True),
    (EMAIL, pii.emails, False),
    (IP_ADDRESS, pii.ip_addresses, False),
    (PHONE, pii.phones, True),
)


def detect(
    text: str,
    types: Collection[str] | None = None,
    recognizers: Sequence[Recognizer] = (),
) -> list[Entity]:
    """Every entity found in ``text``, in order of position, none overlapping.

    ``types`` limits the scan to those entity types (default: all the built-in
    detectors' and the ``recognizers``'). Where two findings overlap, the
    higher score wins, then the longer span: a card number is not also a phone
    number, an email's domain not also a token.
    """
    wanted: Collection[str] = ENTITY_TYPES if types is None else types
    if types is None and recognizers:
        wanted = {*ENTITY_TYPES, *(t for r in recognizers for t in r.types)}
    has_digit = any(char.isdigit() for char in text)
    found: list[Entity] = []
    for kind, detector, needs_digit in _DETECTORS:
        if kind in wanted and (has_digit or not needs_digit):
            found.extend(detector(text))
    if SECRET in wanted and secrets.assignment_hint(text):
        found.extend(secrets.assigned_secrets(text))
    for recognizer in recognizers:
        asked = recognizer.types.intersection(wanted)
        if asked:
            found.extend(recognizer.find(text, asked))
    return _resolve(found)


def _resolve(found: Iterable[Entity]) -> list[Entity]:
    kept: list[Entity] = []
    for entity in sorted(found, key=lambda e: (-e.score, e.start - e.end, e.start)):
        if all(entity.end <= other.start or entity.start >= other.end for other in kept):
            kept.append(entity)
    kept.sort(key=lambda e: e.start)
    return kept
