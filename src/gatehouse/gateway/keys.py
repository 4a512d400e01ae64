"""Virtual keys: their format, hashing, and the in-process cache that checks them.

A key reads ``gh-<id>_<secret>``: ``id`` (16 hex digits) finds the record in
one look-up, and the secret is checked against a salted HMAC-SHA256 digest in
constant time. A key is random (192 bits), so a fast hash is enough: a slow
password hash would only cost every request a millisecond for no gain.

Verified records are cached in process. Every change to keys, teams or users
bumps a revision number in SQL; each replica polls it (every 0.5 s by default)
and drops its caches when it moves, so a revocation takes effect everywhere
within a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass

from gatehouse.core.principal import Principal
from gatehouse.core.records import KeyRecord, SubjectKind, SubjectRecord
from gatehouse.core.tasks import cancel_and_wait
from gatehouse.store.directory import DirectoryStore

log = logging.getLogger("gatehouse.keys")

KEY_PREFIX = "gh-"
_KEY = re.compile(r"gh-([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})")
_MAX_CACHED = 100_000


def new_key() -> tuple[str, str, str, str]:
    """A fresh key: ``(key_id, full_key, salt, digest)``. Show ``full_key`` once."""
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(24)
    salt = secrets.token_hex(16)
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}", salt, digest(salt, secret)


def new_secret(key_id: str) -> tuple[str, str, str]:
    """A new secret for an existing id (rotation): ``(full_key, salt, digest)``."""
    secret = secrets.token_urlsafe(24)
    salt = secrets.token_hex(16)
    return f"{KEY_PREFIX}{key_id}_{secret}", salt, digest(salt, secret)


def digest(salt: str, secret: str) -> str:
    # hmac.digest: OpenSSL's one-shot HMAC, about half the time of hmac.new's
    # object on every authenticated request; the same hex digest.
    return hmac.digest(bytes.fromhex(salt), secret.encode(), "sha256").hex()


def parse_key(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key, else ``None``."""
    match = _KEY.fullmatch(token)
    return None if match is None else (match.group(1), match.group(2))


def matches(record: KeyRecord, secret: str) -> bool:
    return hmac.compare_digest(digest(record.salt, secret), record.digest)


def verified(cached: CachedKey, secret: str) -> bool:
    """Whether ``secret`` is the cached key's, checked against its salted digest
    once per cache entry and then against a SHA-256 of the secret remembered
    on the entry (a fraction of the HMAC's cost on every request). The entry,
    and what it remembers, goes whenever the directory drops its caches (a
    rotation, a revocation, any admin change); the raw secret is never kept."""
    proof = hashlib.sha256(secret.encode()).digest()
    if cached.proof is not None and hmac.compare_digest(cached.proof, proof):
        return True
    if not matches(cached.record, secret):
        return False
    cached.proof = proof
    return True


def principal_for(record: KeyRecord) -> Principal:
    return Principal(
        id=f"key:{record.id}",
        kind="key",
        scopes=frozenset(record.scopes),
        models=None if record.models is None else frozenset(record.models),
        key_id=record.id,
        user=record.user,
        team=record.team,
        org=record.org,
    )


@dataclass(slots=True)
class CachedKey:
    record: KeyRecord
    principal: Principal
    proof: bytes | None = None  # SHA-256 of the secret, once it has matched the digest


class Directory:
    """Cached reads of keys and subjects, dropped whenever the SQL revision moves."""

    def __init__(self, store: DirectoryStore, *, poll_seconds: float) -> None:
        self._store = store
        self._poll_seconds = poll_seconds
        self._keys: dict[str, CachedKey | None] = {}
        self._subjects: dict[tuple[str, str], SubjectRecord | None] = {}
        self._loading: dict[str, asyncio.Future[CachedKey | None]] = {}
        self._revision = -1
        # Bumped on every cache drop: a load that started before a drop must
        # not put its (possibly stale) answer into the fresh cache.
        self._generation = 0
        self._task: asyncio.Task[None] | None = None
        self.poll_failures = 0

    async def start(self) -> None:
        self._revision = await self._store.revision()
        self._task = asyncio.create_task(self._poll(), name="gatehouse-revocation-poll")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    @property
    def generation(self) -> int:
        """Changes whenever the caches are dropped; derived caches compare it."""
        return self._generation

    def invalidate(self) -> None:
        self._generation += 1
        self._keys.clear()
        self._subjects.clear()

    async def key(self, key_id: str) -> CachedKey | None:
        try:
            return self._keys[key_id]
        except KeyError:
            pass
        # Many requests with one key arrive together after a cache drop: one
        # of them loads it, the others wait for that load.
        loading = self._loading.get(key_id)
        if loading is not None:
            return await asyncio.shield(loading)
        loading = asyncio.get_running_loop().create_future()
        self._loading[key_id] = loading
        try:
            generation = self._generation
            record = await self._store.key(key_id)
            cached = None if record is None else CachedKey(record, principal_for(record))
            if generation == self._generation:
                if len(self._keys) >= _MAX_CACHED:
                    self._keys.clear()
                self._keys[key_id] = cached
            loading.set_result(cached)
            return cached
        except BaseException as exc:
            loading.set_exception(exc)
            loading.exception()  # retrieved here, so an unawaited failure logs nothing
            raise
        finally:
            del self._loading[key_id]

    async def subject(self, kind: SubjectKind, subject_id: str) -> SubjectRecord | None:
        try:
            return self._subjects[kind, subject_id]
        except KeyError:
            pass
        generation = self._generation
        record = await self._store.subject(kind, subject_id)
        if generation == self._generation:
            if len(self._subjects) >= _MAX_CACHED:
                self._subjects.clear()
            self._subjects[kind, subject_id] = record
        return record

    async def refresh(self) -> None:
        """Check the revision once; drop the caches if anything changed."""
        revision = await self._store.revision()
        if revision != self._revision:
            self._revision = revision
            self.invalidate()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_seconds)
            try:
                await self.refresh()
            except Exception as exc:
                # The database is unreachable: keep serving from the cache (a
                # revocation made now lands when it is back), but say so.
                self.poll_failures += 1
                if self.poll_failures % 20 == 1:
                    log.warning("cannot poll key revocations: %s", exc)
