"""Pseudonyms of user identifiers: a keyed HMAC, so logs and analytics can be
grouped by user without holding who the user is.

With ``privacy.pseudonym_secret`` set, the usage ledger (and the rollups and
reports built from it) and the access log hold ``u_<hmac>`` where they would
hold a user id: the key owner's user id, and the user of a JWT principal
(``jwt:<user>``). Admin queries that filter by user take the plain id and
are translated, so reports still answer "what did alice spend". Changing the
secret changes every pseudonym: what was recorded before no longer groups
with what is recorded after (see docs/privacy.md, "Rotating the secret").

:func:`subject_tag` is an unkeyed digest, for naming a user's entries in
indexes (cache ownership) without writing the id there. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

PREFIX = "u_"
JWT_PREFIX = "jwt:"


class Pseudonyms:
    """Maps user ids to their pseudonyms; the identity when no secret is set."""

    __slots__ = ("_key",)

    def __init__(self, secret: SecretStr | None) -> None:
        self._key = None if secret is None else secret.get_secret_value().encode()

    def __repr__(self) -> str:
        return f"Pseudonyms(enabled={self.enabled})"

    @property
    def enabled(self) -> bool:
        return self._key is not None

    def user(self, user: str | None) -> str | None:
        """``user``'s pseudonym (``u_`` and 32 hex digits), or ``user`` when off."""
        if user is None or self._key is None:
            return user
        return PREFIX + hmac.new(self._key, user.encode(), hashlib.sha256).hexdigest()[:32]

    def principal(self, principal: str | None) -> str | None:
        """A principal id with its user pseudonymised: ``jwt:<user>`` is the only
        kind that names a user (keys are ``key:<id>``)."""
        if principal is None or self._key is None or not principal.startswith(JWT_PREFIX):
            return principal
        return JWT_PREFIX + str(self.user(principal[len(JWT_PREFIX) :]))

    def forms(self, user: str) -> list[str]:
        """Every form ``user`` may be recorded under: itself, and its pseudonym
        (events recorded before pseudonyms were turned on hold the plain id)."""
        pseudonym = self.user(user)
        return [user] if pseudonym == user or pseudonym is None else [user, pseudonym]


def subject_tag(user: str) -> str:
    """A digest naming ``user`` in an index (which cache entries are theirs),
    so the index holds no user id. Unkeyed: the same on every replica."""
    return hashlib.sha256(b"gatehouse-subject:" + user.encode()).hexdigest()[:32]
