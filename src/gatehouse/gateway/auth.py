"""Authentication: a bearer credential becomes a :class:`Principal`.

Accepted, in this order: the master key, a virtual key (``gh-...``), a JWT.
With no master key and no JWT configured, authentication is off and every
caller is ``anonymous`` (the server then listens on localhost only). Every
failure is the same 401 with the same message, whatever went wrong.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from gatehouse.core.config import AuthConfig
from gatehouse.core.errors import (
    AuthenticationError,
    PermissionDeniedError,
    ServiceUnavailableError,
)
from gatehouse.core.ids import Clock
from gatehouse.core.principal import ANONYMOUS, Principal
from gatehouse.gateway.jwt_auth import JWTVerifier
from gatehouse.gateway.keys import KEY_PREFIX, Directory, parse_key, verified
from gatehouse.gateway.pipeline import CallContext, Next, Result

log = logging.getLogger("gatehouse.auth")

MASTER = Principal(id="master", kind="master")


class Authenticator:
    def __init__(self, config: AuthConfig, directory: Directory, clock: Clock) -> None:
        self.enabled = config.enabled
        self._master = config.master_key.get_secret_value().encode() if config.master_key else None
        self._jwt = JWTVerifier(config.jwt) if config.jwt.enabled else None
        self._directory = directory
        self._clock = clock

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        token = bearer(headers)
        if token is None:
            raise AuthenticationError("Missing credentials: send 'Authorization: Bearer <key>'.")
        if self._master is not None and hmac.compare_digest(token.encode(), self._master):
            return MASTER
        if token.startswith(KEY_PREFIX):
            return await self._virtual_key(token)
        if self._jwt is not None and token.count(".") == 2:
            return self._jwt.verify(token)
        raise AuthenticationError()

    async def _virtual_key(self, token: str) -> Principal:
        parsed = parse_key(token)
        if parsed is None:
            raise AuthenticationError()
        key_id, secret = parsed
        try:
            cached = await self._directory.key(key_id)
        except Exception as exc:
            # Not cached and the database is unreachable: the caller may be
            # legitimate, so this is a retryable 503, not a 401.
            log.warning("cannot look up key %s: %s", key_id, exc)
            raise ServiceUnavailableError(
                "Credentials cannot be checked right now; try again shortly."
            ) from None
        if (
            cached is None
            or not verified(cached, secret)
            or not cached.record.usable(self._clock())
        ):
            raise AuthenticationError()
        return cached.principal


def bearer(headers: Mapping[str, str]) -> str | None:
    """The credential of ``Authorization: Bearer ...``, else of ``x-api-key``
    (what the Anthropic SDK sends)."""
    value = headers.get("authorization")
    if value is not None:
        scheme, _, token = value.partition(" ")
        token = token.strip()
        return token if scheme.lower() == "bearer" and token else None
    api_key = headers.get("x-api-key")
    return api_key.strip() or None if api_key is not None else None


# Rerank needs the embeddings scope, as peer gateways treat it (a retrieval call).
_ENDPOINT_SCOPES = {"chat": "chat", "embeddings": "embeddings", "rerank": "embeddings"}


class AuthStage:
    """Sets ``ctx.principal`` and enforces the endpoint's scope and the allowed models."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._auth = authenticator

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        if ctx.principal is None:
            ctx.principal = await self._auth.authenticate(ctx.headers)
        principal = ctx.principal
        # HTTP routes checked their own scope already; this is the check for
        # the calls made on a caller's behalf (RAG, CLI), with the same rule.
        principal.require(_ENDPOINT_SCOPES[ctx.endpoint])
        if not principal.may_use(ctx.model):
            raise PermissionDeniedError(
                f"This key may not use the model '{ctx.model}'.", param="model"
            )
        return await call_next(ctx)
