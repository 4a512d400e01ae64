"""JWT bearer tokens: verify, then map claims to a :class:`Principal`.

HS256 uses a shared secret; RS256 and ES256 use public keys (PEM files) or a
JWKS file. Only the algorithms that a configured key can verify are accepted,
so ``alg: none`` and algorithm-confusion tokens (an HS256 token signed with a
public key's bytes) fail. ``exp`` is required. Every failure is the same 401.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from gatehouse.core.config import JWTConfig
from gatehouse.core.errors import AuthenticationError, ConfigError
from gatehouse.core.principal import Principal

_ASYMMETRIC = ("RS256", "ES256")


class JWTVerifier:
    def __init__(self, config: JWTConfig) -> None:
        self._config = config
        self._secret = config.secret.get_secret_value() if config.secret else None
        self._public: list[Any] = []
        self._by_kid: dict[str, Any] = {}
        for path in config.public_keys:
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"auth.jwt.public_keys: cannot read {path}: {exc.strerror}"
                ) from None
            self._public.append(_load_pem(pem, path))
        if config.jwks_file is not None:
            self._load_jwks(config)

    def _load_jwks(self, config: JWTConfig) -> None:
        path = config.jwks_file
        assert path is not None
        try:
            document = json.loads(path.read_text())
            entries = document["keys"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"auth.jwt.jwks_file: cannot load {path}: {exc}") from None
        for entry in entries:
            kty = entry.get("kty")
            try:
                if kty == "RSA":
                    key: Any = RSAAlgorithm.from_jwk(entry)
                elif kty == "EC":
                    key = ECAlgorithm.from_jwk(entry)
                else:
                    continue
            except (ValueError, jwt.InvalidKeyError) as exc:
                raise ConfigError(f"auth.jwt.jwks_file: bad key in {path}: {exc}") from None
            if "kid" in entry:
                self._by_kid[str(entry["kid"])] = key
            self._public.append(key)

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError() from None
        alg = header.get("alg")
        candidates: list[Any]
        if alg == "HS256" and self._secret is not None:
            candidates = [self._secret]
        elif alg in _ASYMMETRIC and self._public:
            kid = header.get("kid")
            pool = [self._by_kid[kid]] if kid in self._by_kid else self._public
            kind = RSAPublicKey if alg == "RS256" else EllipticCurvePublicKey
            candidates = [key for key in pool if isinstance(key, kind)]
        else:
            raise AuthenticationError()
        claims = None
        for key in candidates:
            try:
                claims = jwt.decode(
                    token,
                    key=key,
                    algorithms=[alg],
                    audience=self._config.audience,
                    issuer=self._config.issuer,
                    leeway=self._config.leeway_seconds,
                    options={"require": ["exp"], "verify_aud": self._config.audience is not None},
                )
                break
            except (jwt.PyJWTError, TypeError, ValueError):
                continue
        if claims is None:
            raise AuthenticationError()
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        config = self._config
        user = claims.get(config.user_claim)
        if not isinstance(user, str) or not user:
            raise AuthenticationError()
        team = claims.get(config.team_claim)
        org = claims.get(config.org_claim)
        raw_scopes = claims.get(config.scopes_claim)
        if isinstance(raw_scopes, str):
            scopes = frozenset(raw_scopes.split())
        elif isinstance(raw_scopes, list):
            scopes = frozenset(str(s) for s in raw_scopes)
        else:
            scopes = frozenset(config.default_scopes)
        models = claims.get(config.models_claim)
        return Principal(
            id=f"jwt:{user}",
            kind="jwt",
            scopes=scopes,
            models=frozenset(str(m) for m in models) if isinstance(models, list) else None,
            user=user,
            team=team if isinstance(team, str) else None,
            org=org if isinstance(org, str) else None,
        )


def _load_pem(pem: bytes, path: object) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return load_pem_public_key(pem)
    except ValueError as exc:
        raise ConfigError(f"auth.jwt.public_keys: {path} is not a PEM public key: {exc}") from None
