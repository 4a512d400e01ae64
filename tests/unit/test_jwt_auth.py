"""JWT bearer tokens: HS256, RS256 from a PEM file, ES256 from a JWKS file; and
every tampered token is the same bare 401."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import openai
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from gatehouse.core.config import JWTConfig
from gatehouse.core.errors import ConfigError
from gatehouse.gateway.jwt_auth import JWTVerifier

from .governed import Governed, governed_app

SECRET = "a-shared-secret-of-at-least-32-bytes!"
AUDIENCE = "gatehouse"
HELLO = [{"role": "user", "content": "hello"}]

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "team": "research", "aud": AUDIENCE, "exp": time.time() + 600, **extra}


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(
        RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    jwk = json.loads(ECAlgorithm.to_jwk(EC_KEY.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "ec-1"}]}))
    auth = {
        "master_key": "sk-master-test-0123456789",
        "jwt": {
            "secret": SECRET,
            "public_keys": [str(pem)],
            "jwks_file": str(jwks),
            "audience": AUDIENCE,
        },
    }
    async for governed in governed_app(tmp_path, auth=auth):
        yield governed


async def test_hs256_rs256_and_es256_tokens_are_accepted(gov: Governed) -> None:
    tokens = [
        jwt.encode(claims(), SECRET, algorithm="HS256"),
        jwt.encode(claims(), RSA_KEY, algorithm="RS256"),
        jwt.encode(claims(), EC_KEY, algorithm="ES256", headers={"kid": "ec-1"}),
    ]
    for token in tokens:
        reply = await gov.sdk(token).chat.completions.create(model="default", messages=HELLO)
        assert reply.choices[0].message.content == "hello"
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger")).json()["events"]
    assert {(e["principal"], e["team"]) for e in events} == {("jwt:alice", "research")}


async def test_claims_carry_scopes_and_models(gov: Governed) -> None:
    narrow = jwt.encode(claims(scope="embeddings"), SECRET, algorithm="HS256")
    with pytest.raises(openai.PermissionDeniedError):
        await gov.sdk(narrow).chat.completions.create(model="default", messages=HELLO)
    models = jwt.encode(claims(models=["other"]), SECRET, algorithm="HS256")
    with pytest.raises(openai.PermissionDeniedError):
        await gov.sdk(models).chat.completions.create(model="default", messages=HELLO)


def _alg_none() -> str:
    header = jwt.utils.base64url_encode(b'{"alg":"none","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode()).decode()
    return f"{header}.{body}."


def _tampered() -> dict[str, str]:
    good = jwt.encode(claims(), SECRET, algorithm="HS256")
    head, _, signature = good.split(".")
    forged_body = jwt.utils.base64url_encode(json.dumps(claims(sub="mallory")).encode()).decode()
    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "alg none": _alg_none(),
        "wrong signature": jwt.encode(claims(), "another-secret-of-32-bytes-or-more!!", "HS256"),
        "edited payload": f"{head}.{forged_body}.{signature}",
        "expired": jwt.encode(claims(exp=time.time() - 5), SECRET, algorithm="HS256"),
        "wrong audience": jwt.encode(claims(aud="someone-else"), SECRET, algorithm="HS256"),
        "no expiry": jwt.encode({"sub": "alice", "aud": AUDIENCE}, SECRET, algorithm="HS256"),
        "no subject": jwt.encode(claims(sub=None), SECRET, algorithm="HS256"),
        "rs256 signed by a stranger": jwt.encode(
            claims(), rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"
        ),
        "public key as hmac secret": _hmac_with(public_pem),
        "garbage": "a.b.c",
    }


def _hmac_with(secret: bytes) -> str:
    import base64
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode()).decode()
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


async def test_tampered_tokens_are_the_same_bare_401(gov: Governed) -> None:
    bodies = {}
    for name, token in _tampered().items():
        response = await gov.http.post(
            "/v1/chat/completions",
            json={"model": "default", "messages": HELLO},
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 401, name
        bodies[name] = response.json()
    assert len({json.dumps(body, sort_keys=True) for body in bodies.values()}) == 1
    error = next(iter(bodies.values()))["error"]
    assert error == {
        "message": "Invalid authentication credentials.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


def test_bad_key_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="public_keys"):
        JWTVerifier(JWTConfig(public_keys=[tmp_path / "missing.pem"]))
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        JWTVerifier(JWTConfig(public_keys=[tmp_path / "bad.pem"]))
    (tmp_path / "jwks.json").write_text("{}")
    with pytest.raises(ConfigError, match="jwks_file"):
        JWTVerifier(JWTConfig(jwks_file=tmp_path / "jwks.json"))
