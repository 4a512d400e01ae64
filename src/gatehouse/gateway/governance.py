"""Governance wired together: the SQL store, outbox, counters, caches and the three stages.

:class:`Governance` owns every resource that keys, limits, budgets and the
ledger need, starts them (migrations, outbox thread, shipper, revocation poll)
and stops them. It builds its three stages (:attr:`auth`, :attr:`metering`,
:attr:`limits`); where they go in the pipeline is
:func:`gatehouse.gateway.service.pipeline_stages`'s to say. The admin API and
the CLI use :attr:`admin`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from gatehouse.catalog import PricingTable
from gatehouse.core.config import Settings
from gatehouse.core.ids import Clock, system_clock
from gatehouse.core.pseudonyms import Pseudonyms
from gatehouse.gateway.admin import Admin
from gatehouse.gateway.auth import Authenticator, AuthStage
from gatehouse.gateway.auth_failures import FailedAuthLimiter
from gatehouse.gateway.guard_policies import GuardPolicies
from gatehouse.gateway.keys import Directory
from gatehouse.gateway.limits import LimitsStage
from gatehouse.gateway.metering import MeteringStage
from gatehouse.store.counters import Claim, Counters, MemoryCounters
from gatehouse.store.database import Database, database_url
from gatehouse.store.directory import DirectoryStore
from gatehouse.store.guard_policies import GuardPolicyStore
from gatehouse.store.ledger import LedgerStore
from gatehouse.store.outbox import Outbox
from gatehouse.store.retention import Retention
from gatehouse.store.shipper import Shipper
from gatehouse.store.sqlite_counters import COUNTERS_FILE, SqliteCounters

log = logging.getLogger("gatehouse.governance")


class Governance:
    def __init__(
        self, settings: Settings, *, clock: Clock = system_clock, counters: Counters | None = None
    ) -> None:
        store = settings.store
        url = store.database_url.get_secret_value() if store.database_url else None
        self.database = Database(database_url(url, settings.data_dir))
        self._auto_upgrade = store.auto_upgrade
        self.directory_store = DirectoryStore(self.database)
        self.pseudonyms = Pseudonyms(settings.privacy.pseudonym_secret)
        self.ledger = LedgerStore(self.database, pseudonyms=self.pseudonyms)
        self.outbox = Outbox(settings.data_dir / "outbox.db")
        self.shipper = Shipper(
            self.outbox,
            self.ledger,
            interval=store.ship_interval_seconds,
            batch_size=store.ship_batch_size,
        )
        self.directory = Directory(
            self.directory_store, poll_seconds=settings.auth.revocation_poll_seconds
        )
        if counters is None:
            if store.redis_url is not None:
                from gatehouse.store.redis_counters import RedisCounters

                counters = RedisCounters(store.redis_url.get_secret_value())
            elif settings.server.workers > 1:
                # One host's workers share a file, so that limits, budgets,
                # failed logins and logouts hold across them.
                counters = SqliteCounters(settings.data_dir / COUNTERS_FILE)
            else:
                counters = MemoryCounters()
        self.counters = counters
        self._redis_configured = store.redis_url is not None
        self.pricing = PricingTable.from_settings(settings)
        self.authenticator = Authenticator(settings.auth, self.directory, clock)
        self.failed_auth = FailedAuthLimiter(
            counters,
            settings.auth.failed_attempts,
            clock=clock,
            fail_open=store.redis_failure == "fail_open",
        )
        self.auth = AuthStage(self.authenticator)
        self.limits = LimitsStage(
            counters,
            self.directory,
            self.ledger,
            self.pricing,
            settings.limits,
            clock=clock,
            fail_open=store.redis_failure == "fail_open",
        )
        self.metering = MeteringStage(
            self.outbox, self.pricing, clock=clock, pseudonyms=self.pseudonyms
        )
        self.admin = Admin(self.directory_store, self.ledger, self.directory, clock=clock)
        self.guard_policies = GuardPolicies(
            GuardPolicyStore(self.database), self.directory, self.directory_store, clock=clock
        )
        self.retention = Retention(
            self.database, settings.retention, clock=clock, rollups=self.ledger.rollups
        )
        self._clock = clock
        self.clock = clock  # the time keys' expiry and budgets are judged by
        self._started = False

    def reconfigure(self, settings: Settings, pricing: PricingTable) -> None:
        """Price and limit calls by ``settings`` from now on (a configuration reload:
        ``pricing`` was built from them beforehand, so nothing here can fail)."""
        self.pricing.replace_with(pricing)
        self.limits.configure(settings.limits)

    async def claim_once(self, key: str, ttl: float) -> bool:
        """True for the first caller to claim ``key`` within ``ttl`` seconds (0: for
        ever), on any replica sharing the counter store: alert deduplication.

        Raises :class:`~gatehouse.store.counters.CounterUnavailableError` when the
        store cannot be reached."""
        claim = Claim("quota", f"once:{key}", 1.0, 1.0, ttl)
        decision = await self.counters.admit([claim], self._clock())
        return decision.allowed

    def stats(self) -> dict[str, float]:
        """Failure and activity counts since start, for ``/metrics``."""
        return {
            "gatehouse_counter_store_failures": self.limits.counter_failures,
            "gatehouse_soft_budget_alerts": self.limits.soft_alerts,
            "gatehouse_ledger_shipped_events": self.shipper.shipped,
            "gatehouse_ledger_ship_failures": self.shipper.failures,
            "gatehouse_revocation_poll_failures": self.directory.poll_failures,
            "gatehouse_outbox_backlog": self.shipper.backlog,
        }

    def readiness_probes(self) -> list[tuple[str, Callable[[], Awaitable[str]]]]:
        """The stores to check before taking traffic: SQL always, Redis when
        configured, the workers' shared counters file when it is in use."""
        probes: list[tuple[str, Callable[[], Awaitable[str]]]] = [("store:sql", self.database.ping)]
        if isinstance(self.counters, SqliteCounters):
            probes.append(("store:counters", self.counters.probe))
        ping = getattr(self.counters, "ping", None)
        if self._redis_configured and ping is not None:

            async def redis() -> str:
                if not await ping():
                    raise ConnectionError("no answer to PING")
                return "PONG"

            probes.append(("store:redis", redis))
        return probes

    async def start(self) -> None:
        if self._started:
            return
        await self.database.open(upgrade=self._auto_upgrade)
        await asyncio.to_thread(self.outbox.open)
        # Ship what a previous process left behind before serving, so budgets
        # seeded from the ledger see it; a database outage must not block start.
        try:
            await asyncio.wait_for(self.shipper.drain(), timeout=10)
        except Exception as exc:
            log.warning("could not ship pending usage events at start: %s", exc)
        self.shipper.start()
        self.retention.start()
        await self.directory.start()
        self._started = True

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        await self.directory.stop()
        await self.retention.stop()
        await self.shipper.stop()
        await asyncio.to_thread(self.outbox.close)
        with contextlib.suppress(Exception):
            await self.counters.close()
        await self.database.close()
