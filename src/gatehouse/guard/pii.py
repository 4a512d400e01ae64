"""Detectors of personal data: emails, phone numbers, cards, IBANs, US SSNs, IP addresses.

Each detector is a precompiled pattern that proposes candidates and a check
that keeps only the real ones (Luhn, mod-97, issued ranges, ``ipaddress``),
so order numbers, bad IBANs, dates and version strings do not fire. Each is a
function ``(text) -> Iterator[Entity]``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

from gatehouse.guard.checksums import IBAN_LENGTHS, iban_valid, luhn_valid, ssn_valid
from gatehouse.guard.entities import (
    CREDIT_CARD,
    EMAIL,
    IBAN,
    IP_ADDRESS,
    PHONE,
    US_SSN,
    Entity,
)

_EMAIL = re.compile(
    r"(?<![\w.%+-])[^\W_][\w.%+'-]{0,63}@"
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+[^\W\d_]{2,24}(?![\w-]|\.\w)"
)


def emails(text: str) -> Iterator[Entity]:
    if "@" not in text:
        return
    for match in _EMAIL.finditer(text):
        yield Entity(EMAIL, match.start(), match.end(), 0.95)


# Phone numbers. Three shapes, each needing the separators people write, so a
# bare run of digits (an order number, a timestamp) is never a phone:
#  - international: +CC then groups (+44 20 7946 0958, +1 (415) 555-0132);
#  - North American: (415) 555-0132, 415-555-0132, 1-800-555-0199;
#  - national with a trunk 0: 020 7946 0958, 06 12 34 56 78, (030) 901820.
_BEFORE = r"(?<![\w+.:/-])"
_AFTER = r"(?![\w]|[.:/-]\d|\s\d)"
_PHONE = re.compile(
    _BEFORE
    + r"(?:"
    + r"\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,5})(?:[ .-]?\d{1,5}){1,5}"
    + r"|(?:1[ .-])?(?:\([2-9]\d{2}\)[ ]?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"
    + r"|(?:\(0\d{1,4}\)[ ]?|0\d{1,4}[ ./-])\d{2,8}(?:[ .-]\d{2,4}){0,3}"
    + r")"
    + _AFTER
)
_DATE = re.compile(r"\d{1,4}[./-]\d{1,2}[./-]\d{1,4}")


def phones(text: str) -> Iterator[Entity]:
    for match in _PHONE.finditer(text):
        value = match.group()
        digits = sum(char.isdigit() for char in value)
        if value.startswith("+"):
            if not 8 <= digits <= 15:
                continue
        elif value.startswith(("0", "(0")) and (not 9 <= digits <= 12 or _DATE.fullmatch(value)):
            continue
        yield Entity(PHONE, match.start(), match.end(), 0.8)


# 13 to 19 digits in groups of 4 (or Amex's 4-6-5), one kind of separator.
_CARD = re.compile(
    r"(?<![\w.+-])(?:"
    r"\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,7}"
    r"|\d{4}([ -]?)\d{6}\2\d{4,5}"
    r")(?![\w]|[.-]\d)"
)
# Issuer prefixes of the networks in use (Visa, Mastercard, Amex, Discover,
# Diners, JCB, UnionPay, Maestro): a Luhn-valid number outside them is an id.
_ISSUER = re.compile(r"4|5[1-5]|2[2-7]|3[47]|3[068]|35|6(?:011|5|4[4-9]|2)|5[06-8]|6")


def cards(text: str) -> Iterator[Entity]:
    for match in _CARD.finditer(text):
        digits = match.group().replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and _ISSUER.match(digits) and luhn_valid(digits):
            yield Entity(CREDIT_CARD, match.start(), match.end(), 0.95)


_IBAN = re.compile(r"(?<![\w])([A-Z]{2})(\d{2})[ ]?[A-Z0-9]{4}(?:[ ]?[A-Z0-9]{1,4}){1,7}")


def ibans(text: str) -> Iterator[Entity]:
    for match in _IBAN.finditer(text):
        length = IBAN_LENGTHS.get(match.group(1))
        if length is None:
            continue
        # The pattern may run on into the next word; keep exactly the country's
        # length of characters, then require a word boundary there.
        start, count, end = match.start(), 0, match.start()
        while end < len(text) and count < length:
            char = text[end]
            if char != " ":
                if not char.isalnum():
                    break
                count += 1
            end += 1
        if count != length or (end < len(text) and text[end].isalnum()):
            continue
        compact = text[start:end].replace(" ", "")
        if iban_valid(compact):
            yield Entity(IBAN, start, end, 1.0)


_SSN = re.compile(r"(?<![\w.-])(\d{3})([- ])(\d{2})\2(\d{4})(?![\w]|[.-]\d)")
# Nine bare digits are an SSN only when the text says so just before.
_SSN_BARE = re.compile(
    r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\s*(?:#|no\.?|number)?\s*[:=]?\s*"
    r"(\d{3})(\d{2})(\d{4})(?!\w)"
)


def ssns(text: str) -> Iterator[Entity]:
    for match in _SSN.finditer(text):
        if ssn_valid(match.group(1), match.group(3), match.group(4)):
            yield Entity(US_SSN, match.start(), match.end(), 0.85)
    lowered = text.lower()
    if "ssn" not in lowered and "social" not in lowered:
        return
    for match in _SSN_BARE.finditer(text):
        if ssn_valid(match.group(1), match.group(2), match.group(3)):
            yield Entity(US_SSN, match.start(1), match.end(3), 0.8)


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
# Four dotted numbers after "version", "v" or a pin are a version, not an address.
_VERSION_BEFORE = re.compile(
    r"(?i)(?:\bv|\b(?:version|release|build|section|chapter|clause|step)\s*|[=<>~!]=\s*|§\s*)$"
)
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[\w.]+)?(?![\w:]|\.\d)"
)


def ip_addresses(text: str) -> Iterator[Entity]:
    for match in _IPV4.finditer(text):
        try:
            address = ipaddress.IPv4Address(match.group())
        except ValueError:
            continue
        if _is_netmask(int(address)):
            continue
        if _VERSION_BEFORE.search(text, max(0, match.start() - 12), match.start()):
            continue
        yield Entity(IP_ADDRESS, match.start(), match.end(), 0.9)
    if "::" not in text and text.count(":") < 7:
        return
    for match in _IPV6.finditer(text):
        value, end = match.group(), match.end()
        if value.endswith(":") and not value.endswith("::"):
            value, end = value[:-1], end - 1
        # "::" alone is C++ or Rust more often than an address.
        if value.count(":") < 2 or value == "::":
            continue
        try:
            ipaddress.IPv6Address(value)
        except ValueError:
            continue
        yield Entity(IP_ADDRESS, match.start(), end, 0.9)


def _is_netmask(value: int) -> bool:
    """255.255.255.0 and its kind: a mask in a network config, not a host."""
    inverted = ~value & 0xFFFFFFFF
    return value >> 24 == 0xFF and inverted & (inverted + 1) == 0
