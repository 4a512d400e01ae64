"""A small OpenID provider for the sign-in tests: a real HTTP server on a free port.

It serves discovery (``/.well-known/openid-configuration``), its JWKS, an
``/authorize`` endpoint that approves at once (a 302 back to the client with
a code) and a ``/token`` endpoint that checks the code, the redirect URI, the
client secret and the PKCE verifier (S256) before it issues an RS256 ID token
for :attr:`claims`. :attr:`tamper` makes the next sign-ins go wrong in one way
(a wrong state or nonce, an expired token, a bad signature, another audience),
so a client can be shown to refuse each.

Runs on its own event loop in a background thread, like ``fake_upstream``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .app_thread import AppThread, loopback_port

Tamper = Literal["state", "nonce", "expired", "signature", "audience"]


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str


@dataclass
class OidcProvider:
    client_id: str = "gatehouse-ui"
    client_secret: str = "provider-test-secret"
    # The claims of the user who signs in (``iss``, ``aud``, ``exp``, ``iat``, ``nonce`` added).
    claims: dict[str, Any] = field(
        default_factory=lambda: {"sub": "u-1", "email": "ada@example.com", "groups": []}
    )
    tamper: Tamper | None = None
    kid: str = "test-key-1"
    # The name in the issuer URL: "localhost" makes the provider another site than
    # a gatehouse at 127.0.0.1, as a real one is (SameSite cookies behave so).
    host: str = "127.0.0.1"
    # Show an "Approve" link at /authorize instead of redirecting at once.
    consent: bool = False
    port: int = 0
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    _key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    _grants: dict[str, _Grant] = field(default_factory=dict)
    _server: AppThread = field(default_factory=lambda: AppThread("oidc-provider"))

    @property
    def issuer(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ui_config(self, roles: str = "{}") -> str:
        """The YAML of gatehouse's ``ui.oidc`` section signing in here, with
        ``roles`` (a YAML mapping, e.g. ``"{ops: admin}"``)."""
        return f"""
ui:
  oidc:
    issuer: '{self.issuer}'
    client_id: {self.client_id}
    client_secret: {self.client_secret}
    roles: {roles}
"""

    def reset(self) -> None:
        self.tamper = None
        self.claims = {"sub": "u-1", "email": "ada@example.com", "groups": []}
        self.token_requests.clear()
        self.authorize_requests.clear()

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> OidcProvider:
        self.port = loopback_port()
        self._server.start(self._app, self.port)
        return self

    def stop(self) -> None:
        self._server.stop()

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        return app

    # -- endpoints ---------------------------------------------------------------

    async def _discovery(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        jwk = RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return web.json_response({"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.authorize_requests.append(q)
        if (
            q.get("response_type") != "code"
            or q.get("client_id") != self.client_id
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
            or "openid" not in q.get("scope", "").split()
        ):
            return web.Response(status=400, text="bad authorization request")
        code = secrets.token_urlsafe(16)
        self._grants[code] = _Grant(
            client_id=q["client_id"],
            redirect_uri=q["redirect_uri"],
            challenge=q["code_challenge"],
            nonce=q.get("nonce", ""),
        )
        state = "forged-state" if self.tamper == "state" else q.get("state", "")
        separator = "&" if "?" in q["redirect_uri"] else "?"
        location = q["redirect_uri"] + separator + urlencode({"code": code, "state": state})
        if not self.consent:
            raise web.HTTPFound(location)
        # As a real provider's sign-in page: the user's click sends the browser back,
        # so that navigation starts on the provider's site, not on gatehouse's.
        page = (
            '<!doctype html><title>Sign in</title><link rel="icon" href="data:,">'
            f'<a href="{html.escape(location)}">Approve</a>'
        )
        return web.Response(text=page, content_type="text/html")

    async def _token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        expected = "Basic " + base64.b64encode(
            f"{self.client_id}:{self.client_secret}".encode()
        ).decode("ascii")
        if request.headers.get("authorization") != expected:
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self._grants.pop(form.get("code", ""), None)  # a code is good once
        if (
            form.get("grant_type") != "authorization_code"
            or grant is None
            or grant.redirect_uri != form.get("redirect_uri")
            or grant.client_id != form.get("client_id")
        ):
            return web.json_response({"error": "invalid_grant"}, status=400)
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != grant.challenge:
            return web.json_response({"error": "invalid_grant", "reason": "pkce"}, status=400)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "id_token": self.id_token(grant.nonce),
            }
        )

    def id_token(self, nonce: str) -> str:
        now = int(time.time())
        claims = {
            **self.claims,
            "iss": self.issuer,
            "aud": "someone-else" if self.tamper == "audience" else self.client_id,
            "iat": now,
            "exp": now - 3600 if self.tamper == "expired" else now + 300,
            "nonce": "forged-nonce" if self.tamper == "nonce" else nonce,
        }
        key: Any = self._key
        if self.tamper == "signature":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})
