"""Durable and shared state: SQL (SQLite or PostgreSQL, Alembic migrations),
the local usage outbox and its shipper, and the counter stores (in process,
a SQLite file for one host's workers, Redis).

- :class:`~gatehouse.store.database.Database`: the engine, migrated on open.
- :class:`~gatehouse.store.directory.DirectoryStore`: keys, teams, users, audit.
- :class:`~gatehouse.store.ledger.LedgerStore`: usage events, the request log, spend reports.
- :class:`~gatehouse.store.rollups.Rollups`: daily totals of the ledger, which spend reads.
- :class:`~gatehouse.store.retention.Retention`: the periodic roll-up and purge per data class.
- :class:`~gatehouse.store.outbox.Outbox` and :class:`~gatehouse.store.shipper.Shipper`.
- :class:`~gatehouse.store.counters.Counters` with :class:`~gatehouse.store.counters.MemoryCounters`
    :class:`~gatehouse.store.sqlite_counters.SqliteCounters` (one host's workers, no Redis)
  and :class:`~gatehouse.store.redis_counters.RedisCounters`.
"""
