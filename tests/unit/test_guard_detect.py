"""The guard's detectors: each format, the checksums, the hard negatives, overlaps."""

from __future__ import annotations

import pytest

from gatehouse.guard import Entity, detect
from gatehouse.guard.checksums import iban_valid, luhn_valid, ssn_valid


def _spans(text: str) -> set[tuple[str, str]]:
    return {(e.type, text[e.start : e.end]) for e in detect(text)}


def test_spans_are_character_offsets_end_exclusive() -> None:
    text = "é ü mail: zoë@example.org!"
    [entity] = detect(text)
    assert entity == Entity("EMAIL", 10, 25, entity.score)
    assert text[entity.start : entity.end] == "zoë@example.org"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111 1111 1111 1111", True),
        ("order 4111 1111 1111 1112", False),  # fails Luhn
        ("ref 1234 5678 9012 3452", False),  # passes Luhn, no card network starts with 1
        ("4111-1111 1111-1111", False),  # mixed separators
    ],
)
def test_cards_need_luhn_a_network_prefix_and_one_separator(text: str, expected: bool) -> None:
    assert any(e.type == "CREDIT_CARD" for e in detect(text)) is expected


def test_checksums() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")  # check digits
    assert not iban_valid("DE8937040044053201300")  # Germany's length is 22
    assert not iban_valid("XX89370400440532013000")  # no such country
    assert ssn_valid("536", "22", "1234")
    for area, group, serial in [("000", "12", "3456"), ("666", "12", "3456"),
                                ("912", "34", "5678"), ("536", "00", "1234"),
                                ("536", "22", "0000")]:  # fmt: skip
        assert not ssn_valid(area, group, serial)


def test_iban_stops_at_the_country_length() -> None:
    text = "IBAN DE89 3704 0044 0532 0130 00 ABCD please"
    assert _spans(text) == {("IBAN", "DE89 3704 0044 0532 0130 00")}


@pytest.mark.parametrize(
    "text",
    [
        "the build is 2024-01-15 and the tag 15.01.2024",
        "upgrade to version 1.2.3.4 or v10.0.0.1",
        "pip install numpy==1.26.4.0",
        "trace 550e8400-e29b-41d4-a716-446655440000",
        "netmask 255.255.255.0",
        "std::vector<int> and Foo::bar()",
        "at 12:30:45 from 00:1A:2B:3C:4D:5E",
        "OPENAI_API_KEY=<your-api-key>",
        'api_key = "sk-..."',
        "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "AKIAIOSFODNN7EXAMPLE",
        "password: ********",
        "max_tokens=2048 token_count=123456789",
        'token = os.environ["GITHUB_TOKEN"]',
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
        "-----END PUBLIC KEY-----",
    ],
)
def test_hard_negatives_do_not_fire(text: str) -> None:
    assert detect(text) == []


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("key sk-ant-api03-" + "aB3dE5fG7h" * 9 + "AA", "SECRET", "sk-ant-api03-"),
        ("AKIAZ7Q3KX9PLM2N4B6V", "SECRET", "AKIAZ7Q3KX9PLM2N4B6V"),
        ("xoxb-123456789012-1234567890123-aB3dE5fG7hJ9kL1mN3pQ5rS7", "SECRET", "xoxb-"),
        (
            "Stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc ok",
            "SECRET",
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ),
        ("DB_PASSWORD=Xk9#mQ2$vL8pR4", "SECRET", "Xk9#mQ2$vL8pR4"),
        ("postgres://app:Gx7qP2wZ9k@db:5432/x", "SECRET", "Gx7qP2wZ9k"),
        ("listen [::1]:8080", "IP_ADDRESS", "::1"),
        ("ssn 536221234", "US_SSN", "536221234"),
    ],
)
def test_formats(text: str, kind: str, value: str) -> None:
    found = _spans(text)
    assert any(k == kind and v.startswith(value) for k, v in found), found


def test_overlaps_resolve_to_the_surer_finding() -> None:
    # A token in a URL's user info is a secret, not the local part of an email.
    text = "https://ghp_aBcD1234eFgH5678iJkL9012mNoP3456qRsT@github.com/acme/app.git"
    assert _spans(text) == {("SECRET", "ghp_aBcD1234eFgH5678iJkL9012mNoP3456qRsT")}
    # An international number is not also a card number.
    assert _spans("call +4915112345678") == {("PHONE", "+4915112345678")}


def test_types_limit_the_scan() -> None:
    text = "mail a@b.org, call +44 20 7946 0958"
    assert {e.type for e in detect(text, {"PHONE"})} == {"PHONE"}
    assert detect("", None) == []
