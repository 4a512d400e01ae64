"""Guardrails: detectors of personal data and secrets. Pure functions, no I/O.

:func:`detect` finds entities in a text: each an :class:`Entity` with a type
(``EMAIL``, ``PHONE``, ``CREDIT_CARD``, ``IBAN``, ``US_SSN``, ``IP_ADDRESS``,
``SECRET``), a character span (end exclusive) and a score.

A :class:`Policy` says what to do with each type: allow, redact (``[EMAIL]``),
mask reversibly (``[EMAIL_1]``, put back in the response) or block. A
:class:`RequestGuard` applies it to the texts of one request, keeps that
request's placeholders and restores them, in streamed text too
(:class:`StreamRestorer`). Content categories (:class:`ContentRule`, keyword
and regex rules) block or redact text in requests and answers, streamed ones
through :class:`ContentStreamFilter`. :func:`injection_signals` finds
prompt-injection signals. A :class:`Recognizer` adds free-text types
(``PERSON``, ``LOCATION``), as the Presidio adapter in
:mod:`gatehouse.guard.presidio` does. The gateway's guard stage drives them.
"""

from gatehouse.guard.content import ContentPolicy, ContentRule, ContentStreamFilter
from gatehouse.guard.entities import (
    CREDIT_CARD,
    EMAIL,
    ENTITY_TYPES,
    IBAN,
    IP_ADDRESS,
    LOCATION,
    PERSON,
    PHONE,
    RECOGNISED_TYPES,
    SECRET,
    US_SSN,
    Entity,
)
from gatehouse.guard.injection import SIGNAL_KINDS, Signal, injection_signals
from gatehouse.guard.policy import ACTIONS, Action, Policy, PolicySet
from gatehouse.guard.recognizers import Recognizer
from gatehouse.guard.request import (
    Finding,
    PolicyViolation,
    RequestGuard,
    StreamRestorer,
    strongest,
)
from gatehouse.guard.scanner import detect

__all__ = [
    "ACTIONS",
    "CREDIT_CARD",
    "EMAIL",
    "ENTITY_TYPES",
    "IBAN",
    "IP_ADDRESS",
    "LOCATION",
    "PERSON",
    "PHONE",
    "RECOGNISED_TYPES",
    "SECRET",
    "SIGNAL_KINDS",
    "US_SSN",
    "Action",
    "ContentPolicy",
    "ContentRule",
    "ContentStreamFilter",
    "Entity",
    "Finding",
    "Policy",
    "PolicySet",
    "PolicyViolation",
    "Recognizer",
    "RequestGuard",
    "Signal",
    "StreamRestorer",
    "detect",
    "injection_signals",
    "strongest",
]
