"""The OIDC protocol pieces without a provider: the pending-login cookie, PKCE,
ID-token checks that need no network, and the mapping of claims to roles."""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from gatehouse.core.config import OidcConfig
from gatehouse.ui.oidc import (
    OidcRefused,
    PendingLogin,
    identity_of,
    load_jwks,
    pkce_challenge,
    verify_id_token,
)

KEY = b"k" * 32
ISSUER = "https://idp.example"
SETTINGS = OidcConfig(
    issuer=ISSUER,
    client_id="ui",
    roles={"ops": "admin", "leads": "team_admin", "staff": "viewer"},
)


def test_the_pending_cookie_is_signed_and_expires() -> None:
    now = time.time()
    pending = PendingLogin.new(next="/ui", ttl=600, now=now)
    sealed = pending.seal(KEY)
    assert PendingLogin.unseal(KEY, sealed, now=now) == pending
    with pytest.raises(OidcRefused, match="failed") as wrong_key:
        PendingLogin.unseal(b"other" * 8, sealed, now=now)
    assert "signature" in wrong_key.value.reason
    body, _, signature = sealed.rpartition(".")
    with pytest.raises(OidcRefused):
        PendingLogin.unseal(KEY, body[:-2] + "AA." + signature, now=now)
    with pytest.raises(OidcRefused) as late:
        PendingLogin.unseal(KEY, sealed, now=now + 601)
    assert "too long" in late.value.reason
    with pytest.raises(OidcRefused):
        PendingLogin.unseal(KEY, None, now=now)


def test_pkce_s256_matches_rfc_7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert pkce_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    pending = PendingLogin.new(next="/ui", ttl=60, now=0)
    assert 43 <= len(pending.verifier) <= 128
    digest = hashlib.sha256(pending.verifier.encode()).digest()
    assert base64.urlsafe_b64decode(pkce_challenge(pending.verifier) + "=") == digest


def _es256() -> tuple[Any, dict[str | None, list[Any]]]:
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return private, load_jwks({"keys": [{**jwk, "kid": "e1", "use": "sig"}]})


def _claims(**extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": ISSUER,
        "aud": "ui",
        "sub": "u",
        "iat": now,
        "exp": now + 60,
        "nonce": "n",
    } | extra


def _verify(token: str, keys: dict[str | None, list[Any]]) -> dict[str, Any]:
    return verify_id_token(token, keys, issuer=ISSUER, client_id="ui", nonce="n", leeway=0)


def test_an_es256_token_verifies_and_unsigned_or_symmetric_ones_do_not() -> None:
    private, keys = _es256()
    good = jwt.encode(_claims(), private, algorithm="ES256", headers={"kid": "e1"})
    assert _verify(good, keys)["sub"] == "u"
    unsigned = jwt.encode(_claims(), None, algorithm="none")
    with pytest.raises(OidcRefused) as none:
        _verify(unsigned, keys)
    assert "'none'" in none.value.reason
    symmetric = jwt.encode(_claims(), "a-shared-secret-of-32-bytes-or-more!", algorithm="HS256")
    with pytest.raises(OidcRefused) as hs:
        _verify(symmetric, keys)
    assert "HS256" in hs.value.reason


def test_other_issuers_several_audiences_and_unknown_keys_are_refused() -> None:
    private, keys = _es256()

    def signed(claims: dict[str, Any], kid: str = "e1") -> str:
        return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid})

    for claims, reason in [
        (_claims(iss="https://other.example"), "issuer"),
        (_claims(aud=["ui", "api"]), "authorized party"),
        (_claims(nonce="replayed"), "nonce"),
        ({k: v for k, v in _claims().items() if k != "exp"}, "exp"),
    ]:
        with pytest.raises(OidcRefused) as refused:
            _verify(signed(claims), keys)
        assert reason in refused.value.reason, claims
    assert _verify(signed(_claims(aud=["ui", "api"], azp="ui")), keys)["azp"] == "ui"
    with pytest.raises(OidcRefused) as unknown:
        _verify(signed(_claims(), kid="rotated"), keys)
    assert "no provider key" in unknown.value.reason


@pytest.mark.parametrize(
    ("claims", "role", "team"),
    [
        ({"sub": "a", "groups": ["staff", "ops"]}, "admin", None),
        ({"sub": "b", "groups": "leads staff", "team": "red"}, "team_admin", "red"),
        ({"sub": "c", "groups": ["leads"]}, "viewer", None),  # a team admin needs a team
        ({"sub": "d", "groups": ["unknown"], "team": "red"}, "viewer", "red"),
        ({"sub": "e"}, "viewer", None),
    ],
)
def test_claims_map_to_the_highest_role_found(
    claims: dict[str, Any], role: str, team: str | None
) -> None:
    identity = identity_of(claims, SETTINGS)
    assert (identity.subject, identity.role, identity.team) == (claims["sub"], role, team)


def test_the_default_role_and_the_display_name_come_from_the_settings() -> None:
    settings = SETTINGS.model_copy(update={"default_role": "team_admin", "name_claim": "name"})
    identity = identity_of({"sub": "x", "team": "blue", "name": "Ada"}, settings)
    assert (identity.role, identity.name) == ("team_admin", "Ada")
    with pytest.raises(OidcRefused):
        identity_of({"email": "no-subject@example.com"}, settings)
