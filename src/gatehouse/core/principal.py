"""Who is calling: the identity every stage after authentication works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import SecretStr

from gatehouse.core.errors import PermissionDeniedError

PrincipalKind = Literal["anonymous", "local", "master", "key", "jwt", "oidc"]

ALL_SCOPES = frozenset(
    {"chat", "embeddings", "rag:read", "rag:write", "prompts:read", "prompts:write", "admin"}
)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``models`` of ``None`` allows every model. ``anonymous`` is the caller when
    no authentication is configured (the server then binds to localhost only);
    ``local`` is the in-process caller (the CLI); ``oidc`` a user logged in to
    the web dashboard through single sign-on (gatehouse.ui.session).

    ``credential`` is the bearer token the caller presented, kept only where a
    service must present it again on the caller's behalf (the RAG service
    calling a gateway over HTTP); it never prints and takes no part in equality.
    """

    id: str
    kind: PrincipalKind
    scopes: frozenset[str] = ALL_SCOPES
    models: frozenset[str] | None = None
    key_id: str | None = None
    user: str | None = None
    team: str | None = None
    org: str | None = None
    credential: SecretStr | None = field(default=None, repr=False, compare=False)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str) -> None:
        """Raise 403 unless this caller holds ``scope``: the one scope check that
        routes and the pipeline share."""
        if scope not in self.scopes:
            raise PermissionDeniedError(f"This credential lacks the '{scope}' scope.")

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


ANONYMOUS = Principal(id="anonymous", kind="anonymous")
LOCAL = Principal(id="local", kind="local")
