"""Guardrails: detectors of personal data and secrets. Pure functions, no I/O.

:func:`detect` finds entities in a text: each an :class:`Entity` with a type
(``EMAIL``, ``PHONE``, ``CREDIT_CARD``, ``IBAN``, ``US_SSN``, ``IP_ADDRESS``,
``SECRET``), a character span (end exclusive) and a score.
"""

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
from gatehouse.guard.scanner import detect

__all__ = [
    "CREDIT_CARD",
    "EMAIL",
    "ENTITY_TYPES",
    "IBAN",
    "IP_ADDRESS",
    "PHONE",
    "SECRET",
    "US_SSN",
    "Entity",
    "detect",
]
