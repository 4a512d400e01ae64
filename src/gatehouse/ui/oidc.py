"""Single sign-on for the dashboard: OpenID Connect, authorization-code flow with PKCE.

The protocol is written once, apart from the routes that drive it::

    start    discovery -> state, nonce, PKCE verifier (S256) -> the provider's
             authorize URL; the three secrets travel in a signed, short-lived
             HttpOnly cookie (:class:`PendingLogin`), so any replica can finish
    finish   the callback's ``state`` must equal the cookie's -> the code is
             exchanged at the token endpoint with the verifier -> the ID token
             is verified against the provider's JWKS (RS256 or ES256 signature,
             ``iss``, ``aud``, ``exp``, ``nonce``) -> its claims become a
             :class:`OidcIdentity` with a dashboard role

Every refusal is an :class:`OidcRefused` whose ``reason`` names what failed
(for the log); the user sees one message, as with a bad API key. There is no
cap on how many people may sign in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
import orjson
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import BaseModel, ConfigDict, ValidationError

from gatehouse.core.config import OidcConfig, UiRole
from gatehouse.core.errors import AuthenticationError, ServiceUnavailableError
from gatehouse.ui.session import ROLE_RANK

log = logging.getLogger("gatehouse.ui.oidc")

_ALGORITHMS = ("RS256", "ES256")
# How long a cached JWKS is trusted before an unknown ``kid`` may refetch it.
_JWKS_REFRESH_SECONDS = 30.0


class OidcRefused(AuthenticationError):
    """A sign-in that did not check out; ``reason`` is for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__("Single sign-on failed. Please try again.")
        self.reason = reason


class OidcUnavailable(ServiceUnavailableError):
    """The provider could not be reached or answered with a server error."""

    def __init__(self, reason: str) -> None:
        super().__init__("The single sign-on provider is unavailable; try again shortly.")
        self.reason = reason


class Discovery(BaseModel):
    """The parts of ``/.well-known/openid-configuration`` the flow uses."""

    model_config = ConfigDict(extra="ignore")

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


@dataclass(frozen=True, slots=True)
class OidcIdentity:
    """Who signed in, as the dashboard sees them."""

    subject: str
    name: str
    role: UiRole
    team: str | None


# -- pure protocol -----------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: base64url(sha256(verifier)), unpadded."""
    return _b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(frozen=True, slots=True)
class PendingLogin:
    """What the callback must match: carried in a signed cookie between the two legs."""

    state: str
    nonce: str
    verifier: str
    next: str
    expires: float

    @classmethod
    def new(cls, *, next: str, ttl: float, now: float) -> PendingLogin:
        return cls(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),  # 86 characters: within 43..128
            next=next,
            expires=now + ttl,
        )

    def seal(self, key: bytes) -> str:
        body = _b64url(
            orjson.dumps(
                {
                    "s": self.state,
                    "n": self.nonce,
                    "v": self.verifier,
                    "x": self.next,
                    "e": self.expires,
                }
            )
        )
        return f"{body}.{_sign(key, body)}"

    @classmethod
    def unseal(cls, key: bytes, sealed: str | None, *, now: float) -> PendingLogin:
        if not sealed or "." not in sealed:
            raise OidcRefused("no sign-in in progress (cookie missing)")
        body, _, signature = sealed.rpartition(".")
        if not hmac.compare_digest(signature, _sign(key, body)):
            raise OidcRefused("sign-in cookie signature does not match")
        try:
            data = orjson.loads(_unb64url(body))
            pending = cls(
                state=str(data["s"]),
                nonce=str(data["n"]),
                verifier=str(data["v"]),
                next=str(data["x"]),
                expires=float(data["e"]),
            )
        except (ValueError, KeyError, TypeError):
            raise OidcRefused("sign-in cookie is malformed") from None
        if pending.expires < now:
            raise OidcRefused("sign-in took too long")
        return pending


def _sign(key: bytes, body: str) -> str:
    return _b64url(hmac.new(key, b"gatehouse-oidc\0" + body.encode(), hashlib.sha256).digest())


def authorization_url(
    discovery: Discovery, settings: OidcConfig, *, redirect_uri: str, pending: PendingLogin
) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": settings.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(settings.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pkce_challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
    )
    separator = "&" if "?" in discovery.authorization_endpoint else "?"
    return f"{discovery.authorization_endpoint}{separator}{query}"


def check_state(pending: PendingLogin, state: str | None) -> None:
    if not state or not hmac.compare_digest(state.encode(), pending.state.encode()):
        raise OidcRefused("state does not match the sign-in in progress")


def load_jwks(document: Mapping[str, Any]) -> dict[str | None, list[Any]]:
    """Public keys of a JWKS by ``kid`` (``None`` for keys without one); others skipped."""
    keys: dict[str | None, list[Any]] = {}
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise OidcRefused("the provider's JWKS has no 'keys' list")
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            if entry.get("kty") == "RSA":
                key: Any = RSAAlgorithm.from_jwk(entry)
            elif entry.get("kty") == "EC":
                key = ECAlgorithm.from_jwk(entry)
            else:
                continue
        except (ValueError, jwt.InvalidKeyError):
            continue
        kid = entry.get("kid")
        keys.setdefault(str(kid) if kid is not None else None, []).append(key)
    return keys


def verify_id_token(
    token: str,
    keys: Mapping[str | None, list[Any]],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    leeway: float,
) -> dict[str, Any]:
    """The ID token's claims, if its signature, issuer, audience, expiry and nonce hold."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise OidcRefused("the ID token is not a JWT") from None
    alg = header.get("alg")
    if alg not in _ALGORITHMS:  # never "none", never HS256 keyed by a public key
        raise OidcRefused(f"ID token algorithm {alg!r} is not accepted")
    kid = header.get("kid")
    candidates = keys.get(kid, []) if kid is not None else [k for ks in keys.values() for k in ks]
    last: Exception | None = None
    for key in candidates:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.InvalidSignatureError as exc:
            last = exc
            continue
        except (jwt.PyJWTError, TypeError, ValueError) as exc:
            raise OidcRefused(f"ID token refused: {exc}") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != client_id:
            raise OidcRefused("ID token has several audiences and another authorized party")
        if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(
            claims["nonce"].encode(), nonce.encode()
        ):
            raise OidcRefused("ID token nonce does not match the sign-in in progress")
        return claims
    if last is not None:
        raise OidcRefused("ID token signature does not verify")
    raise OidcRefused(f"no provider key for the ID token (kid {kid!r})")


def identity_of(claims: Mapping[str, Any], settings: OidcConfig) -> OidcIdentity:
    """The dashboard role of verified claims: the highest mapped role found, else the default."""
    subject = claims.get(settings.user_claim)
    if not isinstance(subject, str) or not subject:
        raise OidcRefused(f"ID token has no '{settings.user_claim}' claim")
    raw = claims.get(settings.roles_claim)
    values = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
    role: UiRole = settings.default_role
    for value in values:
        mapped = settings.roles.get(str(value))
        if mapped is not None and ROLE_RANK[mapped] > ROLE_RANK[role]:
            role = mapped
    team_claim = claims.get(settings.team_claim)
    team = team_claim if isinstance(team_claim, str) and team_claim else None
    if role == "team_admin" and team is None:
        log.warning("oidc user %s maps to team_admin but has no team: viewer", subject)
        role = "viewer"
    name = claims.get(settings.name_claim)
    return OidcIdentity(
        subject=subject,
        name=name if isinstance(name, str) and name else subject,
        role=role,
        team=team,
    )


# -- I/O ---------------------------------------------------------------------


class OidcClient:
    """Talks to the provider: discovery and JWKS (cached), the code exchange."""

    def __init__(
        self,
        settings: OidcConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not settings.issuer or not settings.client_id:
            raise ValueError("ui.oidc needs issuer and client_id")
        self.settings = settings
        self.issuer = settings.issuer
        self.client_id = settings.client_id
        self._clock = clock
        self._transport = transport
        self._discovery: Discovery | None = None
        self._keys: dict[str | None, list[Any]] = {}
        self._keys_at = float("-inf")

    def _http(self) -> httpx.AsyncClient:
        # One client per call: sign-ins are rare, and nothing is left to close at shutdown.
        return httpx.AsyncClient(
            timeout=self.settings.http_timeout_seconds,
            transport=self._transport,
            follow_redirects=False,
        )

    async def discovery(self) -> Discovery:
        if self._discovery is None:
            url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                found = Discovery.model_validate(await self._get_json(url, "discovery"))
            except ValidationError as exc:
                raise OidcUnavailable(f"discovery document at {url} is incomplete: {exc}") from None
            # OIDC Discovery 1.0, section 4.3: the document must name this issuer exactly.
            if found.issuer != self.issuer:
                raise OidcRefused(f"discovery names issuer {found.issuer!r}, not {self.issuer!r}")
            self._discovery = found
        return self._discovery

    async def start(self, *, redirect_uri: str, next: str) -> tuple[PendingLogin, str]:
        """A new pending login and the provider URL to send the browser to."""
        pending = PendingLogin.new(
            next=next, ttl=self.settings.login_timeout_seconds, now=self._clock()
        )
        url = authorization_url(
            await self.discovery(), self.settings, redirect_uri=redirect_uri, pending=pending
        )
        return pending, url

    async def finish(
        self, pending: PendingLogin, *, state: str | None, code: str | None, redirect_uri: str
    ) -> OidcIdentity:
        """The callback's leg: check state, exchange the code, verify the ID token."""
        check_state(pending, state)
        if not code:
            raise OidcRefused("the callback carries no code")
        token = await self._exchange(code, pending.verifier, redirect_uri)
        claims = verify_id_token(
            token,
            await self._jwks(token),
            issuer=self.issuer,
            client_id=self.client_id,
            nonce=pending.nonce,
            leeway=self.settings.leeway_seconds,
        )
        return identity_of(claims, self.settings)

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        discovery = await self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "code_verifier": verifier,
        }
        auth: httpx.Auth = httpx.Auth()  # a public client: the verifier is its proof
        if self.settings.client_secret is not None:  # client_secret_basic
            auth = httpx.BasicAuth(self.client_id, self.settings.client_secret.get_secret_value())
        try:
            async with self._http() as http:
                response = await http.post(discovery.token_endpoint, data=form, auth=auth)
        except httpx.HTTPError as exc:
            raise OidcUnavailable(f"token endpoint unreachable: {exc!r}") from None
        if response.status_code >= 500:
            raise OidcUnavailable(f"token endpoint answered {response.status_code}")
        if response.status_code != 200:
            raise OidcRefused(f"token endpoint answered {response.status_code}")
        try:
            token = TokenResponse.model_validate_json(response.content)
        except ValidationError:
            raise OidcRefused("token endpoint answer has no id_token") from None
        return token.id_token

    async def _jwks(self, token: str) -> dict[str | None, list[Any]]:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise OidcRefused("the ID token is not a JWT") from None
        stale = self._clock() - self._keys_at > _JWKS_REFRESH_SECONDS
        if not self._keys or (kid is not None and kid not in self._keys and stale):
            # A provider rotating its keys publishes the new one first: refetch, rarely.
            discovery = await self.discovery()
            self._keys = load_jwks(await self._get_json(discovery.jwks_uri, "JWKS"))
            self._keys_at = self._clock()
        return self._keys

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            async with self._http() as http:
                response = await http.get(url)
        except httpx.HTTPError as exc:
            raise OidcUnavailable(f"{what} unreachable at {url}: {exc!r}") from None
        if response.status_code != 200:
            raise OidcUnavailable(f"{what} at {url} answered {response.status_code}")
        try:
            data = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise OidcUnavailable(f"{what} at {url} is not JSON") from None
        if not isinstance(data, dict):
            raise OidcUnavailable(f"{what} at {url} is not a JSON object")
        return data


class TokenResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id_token: str
