"""UI sessions: signed cookies, roles, CSRF tokens, and the check every UI route passes.

A session is a cookie holding a small JSON payload and its HMAC-SHA256
signature (:class:`Signer`), so any replica with the same secret reads it and
nothing is stored server-side. The payload names who logged in, never a
secret: for a virtual key its id and a fingerprint of its current digest, so
revoking, expiring or rotating the key ends the session on every replica at
the next page (the key directory's revision poll drops its cache within a
second). Logging out ends the session everywhere: a revocation entry for its
random id goes to the shared counter store (in memory, or Redis across
replicas) until the cookie would have expired, and every page checks it, so a
copied cookie is refused from then on.

Roles (:data:`Role`), from the credential that logged in (:func:`role_for`):

- ``admin``: the master key, a key with the ``admin`` scope and no team, or
  anyone when authentication is off (the server then listens on localhost only);
- ``team_admin``: a key with the ``admin`` scope that belongs to a team: it
  sees and manages its own team's keys and data only;
- ``viewer``: any other valid key: read-only, its team's data (or its own key's
  when it has no team).

CSRF: every state-changing UI request carries a synchronizer token, derived
from the session's random id with the signing secret (:func:`csrf_token`), in
a ``csrf_token`` form field or an ``X-CSRF-Token`` header.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import Scope

from gatehouse.core.config import Settings
from gatehouse.core.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from gatehouse.core.principal import ALL_SCOPES, ANONYMOUS, Principal
from gatehouse.gateway.auth import MASTER
from gatehouse.store.counters import UNLIMITED, Claim, Counters, CounterUnavailableError

log = logging.getLogger("gatehouse.ui")

Role = Literal["viewer", "team_admin", "admin"]
ROLE_RANK: Final[dict[Role, int]] = {"viewer": 0, "team_admin": 1, "admin": 2}
# Route scopes of UI pages (gatehouse.server.authz): the least role a page needs.
UI_SCOPES: Final[dict[str, Role]] = {
    "ui:viewer": "viewer",
    "ui:team_admin": "team_admin",
    "ui:admin": "admin",
}
SESSION_COOKIE: Final = "gatehouse_session"
LOGIN_COOKIE: Final = "gatehouse_login"
# The counter keys that record logouts (kept across restarts: store.sqlite_counters).
LOGOUT_PREFIX: Final = "ui-logout:"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
IdentityKind = Literal["key", "master", "anonymous", "oidc"]
# What an OIDC user may do through the gateway (the playground), by role.
_OIDC_SCOPES: Final[dict[Role, frozenset[str]]] = {
    "viewer": frozenset({"chat", "embeddings", "rag:read"}),
    "team_admin": frozenset({"chat", "embeddings", "rag:read", "rag:write"}),
    "admin": ALL_SCOPES,
}


def role_for(principal: Principal) -> Role:
    """The UI role of a credential (see the module docstring)."""
    if not principal.has_scope("admin"):
        return "viewer"
    if principal.team is not None:
        return "team_admin"
    return "admin"


class UiIdentity(BaseModel):
    """Who a session is for. ``subject`` is a key id for ``key``, the OIDC
    subject for ``oidc``; ``role`` and ``team`` are decided at login for
    ``oidc`` (keys' are re-read from the key on every request)."""

    kind: IdentityKind
    subject: str
    role: Role
    name: str
    team: str | None = None
    # For keys: a fingerprint of the key's digest, so rotation ends the session.
    fingerprint: str | None = None


class SessionData(BaseModel):
    """The signed payload of the session cookie."""

    identity: UiIdentity
    sid: str  # random: the CSRF token derives from it
    issued: float
    expires: float


@dataclass(frozen=True, slots=True)
class UiSession:
    """A checked session of the current request: ``scope["state"]["ui"]``."""

    data: SessionData
    principal: Principal
    role: Role
    csrf: str

    @property
    def identity(self) -> UiIdentity:
        return self.data.identity

    @property
    def team_scope(self) -> str | None:
        """The team whose data this session is limited to; ``None``: every team."""
        return None if self.role == "admin" else self.principal.team

    def allows(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class Signer:
    """HMAC-SHA256 over a base64url JSON payload: ``<payload>.<signature>``."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, payload: bytes) -> str:
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        return f"{body}.{self._mac(body)}"

    def unsign(self, value: str) -> bytes | None:
        body, dot, signature = value.partition(".")
        if not dot or not hmac.compare_digest(signature, self._mac(body)):
            return None
        try:
            return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except ValueError:
            return None

    def derive(self, purpose: str, value: str) -> str:
        """A value bound to this secret, for ``purpose`` (CSRF tokens, fingerprints)."""
        mac = hmac.new(self._secret, f"{purpose}\x00{value}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:24]).decode()

    def _mac(self, body: str) -> str:
        mac = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def session_secret(settings: Settings) -> bytes:
    """The signing key: configured, else derived from the master key, else a
    random one kept in the data directory (one host's workers share it)."""
    configured = settings.ui.session_secret
    if configured is not None:
        return hashlib.sha256(configured.get_secret_value().encode()).digest()
    master = settings.auth.master_key
    if master is not None:
        return hmac.new(
            master.get_secret_value().encode(), b"gatehouse-ui-session-v1", hashlib.sha256
        ).digest()
    return _stored_secret(settings.data_dir / "ui-session-secret")


def _stored_secret(path: Path) -> bytes:
    try:
        return bytes.fromhex(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32)
    temporary = path.with_suffix(f".{secrets.token_hex(4)}")
    temporary.touch(mode=0o600)
    temporary.write_text(fresh)
    temporary.replace(path)  # atomic: concurrent workers settle on one file
    return bytes.fromhex(path.read_text().strip())


class Sessions:
    """Issues and checks session cookies for one app (``app.state.ui.sessions``)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._ttl = settings.ui.session_hours * 3600.0
        self.auth_enabled = settings.auth.enabled

    @functools.cached_property
    def _signer(self) -> Signer:
        # On first use: a server whose dashboard nobody opens writes no secret file.
        return Signer(session_secret(self._settings))

    @functools.cached_property
    def _master_fingerprint(self) -> str | None:
        master = self._settings.auth.master_key
        return None if master is None else self._signer.derive("master", master.get_secret_value())

    # -- issuing --

    def start(self, response: Response, identity: UiIdentity, *, secure: bool) -> SessionData:
        """Set the session cookie for ``identity`` on ``response``."""
        now = time.time()
        data = SessionData(
            identity=identity, sid=secrets.token_urlsafe(18), issued=now, expires=now + self._ttl
        )
        response.set_cookie(
            SESSION_COOKIE,
            self._signer.sign(data.model_dump_json().encode()),
            max_age=int(self._ttl),
            path="/ui",
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        response.delete_cookie(LOGIN_COOKIE, path="/ui")
        return data

    # -- logging out everywhere --

    def _logout_key(self, data: SessionData) -> str:
        # Derived, so the store never holds a session's id (its CSRF token's seed).
        return f"{LOGOUT_PREFIX}{self._signer.derive('logout', data.sid)}"

    async def end_everywhere(self, data: SessionData, counters: Counters) -> None:
        """Record in ``counters`` that this session ended, until the cookie would
        have expired (it is refused after that anyway)."""
        now = time.time()
        ttl = max(1.0, data.expires - now + 1.0)
        entry = Claim("quota", self._logout_key(data), UNLIMITED, 1.0, ttl)
        try:
            await counters.admit([entry], now)
        except CounterUnavailableError as exc:
            log.warning(
                "logout: cannot record the end of a session (a copy of its cookie stays "
                "valid until it expires): %s",
                exc,
            )

    async def ended(self, data: SessionData, counters: Counters) -> bool:
        """Whether this session was logged out, on any replica sharing ``counters``.

        A quota of limit 0 is always refused and so never written: the refusal
        carries the stored level, a read that leaves no entry behind."""
        probe = Claim("quota", self._logout_key(data), 0.0, 1.0, 1.0)
        try:
            decision = await counters.admit([probe], time.time())
        except CounterUnavailableError as exc:
            if self._settings.store.redis_failure == "fail_open":
                log.warning("cannot check whether a session was logged out: %s", exc)
                return False
            raise ServiceUnavailableError(
                "Sessions cannot be checked right now; try again shortly."
            ) from None
        return decision.outcomes[0].level > 0

    def end(self, response: Response, *, secure: bool) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path="/ui", secure=secure, httponly=True, samesite="strict"
        )

    def key_fingerprint(self, digest: str) -> str:
        return self._signer.derive("key", digest)

    def master_identity(self) -> UiIdentity:
        return UiIdentity(
            kind="master",
            subject="master",
            role="admin",
            name="master key",
            fingerprint=self._master_fingerprint,
        )

    def is_master(self, identity: UiIdentity) -> bool:
        """Whether a master session was made with the master key configured now."""
        expected = self._master_fingerprint
        given = identity.fingerprint
        return expected is not None and given is not None and hmac.compare_digest(given, expected)

    def matches_master(self, token: str) -> bool:
        return self._master_fingerprint is not None and hmac.compare_digest(
            self._signer.derive("master", token), self._master_fingerprint
        )

    # -- CSRF --

    def csrf_token(self, sid: str) -> str:
        return self._signer.derive("csrf", sid)

    def login_token(self, nonce: str) -> str:
        """The CSRF token of the login form, bound to the login cookie's nonce."""
        return self._signer.derive("csrf-login", nonce)

    def check_csrf(self, expected: str, given: str | None) -> None:
        if not given or not hmac.compare_digest(expected.encode(), given.encode()):
            raise PermissionDeniedError(
                "Missing or wrong CSRF token: reload the page and try again.", code="csrf_failed"
            )

    # -- reading --

    def read(self, connection: HTTPConnection) -> SessionData | None:
        """The signed, unexpired session of this request, else ``None``."""
        raw = connection.cookies.get(SESSION_COOKIE)
        if not raw:
            return None
        payload = self._signer.unsign(raw)
        if payload is None:
            return None
        try:
            data = SessionData.model_validate(json.loads(payload))
        except (ValueError, ValidationError):
            return None
        return data if data.expires > time.time() else None


class LoginRequired(AuthenticationError):
    """No valid session: UI pages answer with a redirect to the login page."""

    def __init__(self, next_path: str) -> None:
        super().__init__("Log in to use the dashboard.")
        self.next_path = next_path


async def authorize_ui(scope: Scope, needs: str) -> Principal:
    """The one check of UI routes (called by ``gatehouse.server.authz.authorize``):
    a valid session whose credential still stands and whose role is at least
    ``needs``'s. Leaves the :class:`UiSession` in ``scope["state"]["ui"]``."""
    from gatehouse.ui.state import ui_state

    state = ui_state(scope)
    connection = HTTPConnection(scope)
    data = state.sessions.read(connection)
    if data is None:
        raise LoginRequired(connection.url.path)
    governance = scope["app"].state.gateway.governance
    if governance is not None and await state.sessions.ended(data, governance.counters):
        raise LoginRequired(connection.url.path)  # logged out, maybe on another replica
    principal = await _principal(scope, state.sessions, data.identity)
    if principal is None:
        raise LoginRequired(connection.url.path)
    identity = data.identity
    role = role_for(principal) if identity.kind == "key" else identity.role
    session = UiSession(
        data=data, principal=principal, role=role, csrf=state.sessions.csrf_token(data.sid)
    )
    scope.setdefault("state", {})["ui"] = session
    if not session.allows(UI_SCOPES[needs]):
        raise PermissionDeniedError(
            f"This page needs the {UI_SCOPES[needs].replace('_', ' ')} role; "
            f"you are logged in as {role.replace('_', ' ')}."
        )
    return principal


async def _principal(scope: Scope, sessions: Sessions, identity: UiIdentity) -> Principal | None:
    """The caller a session acts as, if its credential still stands."""
    governance = scope["app"].state.gateway.governance
    auth_on = governance is not None and governance.authenticator.enabled
    if identity.kind == "anonymous":
        return None if auth_on else ANONYMOUS
    if not auth_on:
        return None  # a session from when authentication was on
    if identity.kind == "master":
        return MASTER if sessions.is_master(identity) else None
    if identity.kind == "oidc":
        return Principal(
            id=f"oidc:{identity.subject}",
            kind="oidc",
            scopes=_OIDC_SCOPES[identity.role],
            user=identity.subject,
            team=identity.team,
        )
    cached = await governance.directory.key(identity.subject)
    if cached is None or not cached.record.usable(governance.clock()):
        return None
    expected = sessions.key_fingerprint(cached.record.digest)
    if identity.fingerprint is None or not hmac.compare_digest(identity.fingerprint, expected):
        return None  # rotated since login
    principal: Principal = cached.principal
    return principal
