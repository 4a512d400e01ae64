"""The SQL conformance suite: SQLite and PostgreSQL stores must behave the same.

Each backend subclasses :class:`SQLConformance` and provides ``database``
(migrated by ``open()``, exactly as a server start does).
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import inspect

from gatehouse.core.records import KeyRecord, SubjectRecord, UsageEvent
from gatehouse.store import schema
from gatehouse.store.database import Database
from gatehouse.store.directory import DirectoryStore
from gatehouse.store.ledger import LedgerStore

from .sql_backends import OnPostgres, OnSQLite

T0 = 1_780_000_000.0


def key_record(key_id: str, **fields: object) -> KeyRecord:
    return KeyRecord.model_validate(
        {
            "id": key_id,
            "name": "k",
            "salt": "00",
            "digest": "ff",
            "scopes": ["chat"],
            "created_at": T0,
            "updated_at": T0,
            **fields,
        }
    )


def event(event_id: str, **fields: object) -> UsageEvent:
    return UsageEvent.model_validate(
        {
            "id": event_id,
            "request_id": f"req-{event_id}",
            "created_at": T0,
            "principal": "key:a",
            "key_id": "a",
            "endpoint": "chat",
            "model": "m1",
            "status": "ok",
            "http_status": 200,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "cost_usd": 0.5,
            "latency_ms": 12.0,
            **fields,
        }
    )


class SQLConformance:
    async def test_migrations_create_the_schema_and_are_idempotent(
        self, database: Database
    ) -> None:
        await database.open()  # a second start migrates nothing

        def tables(connection: object) -> set[str]:
            return set(inspect(connection).get_table_names())

        async with database.engine.connect() as conn:
            found = await conn.run_sync(tables)
        assert set(schema.metadata.tables) <= found
        assert "alembic_version" in found

    async def test_an_older_schema_is_upgraded_in_place(self, database: Database) -> None:
        from alembic import command
        from alembic.config import Config

        from gatehouse.store.database import MIGRATIONS

        def downgrade(connection: object) -> None:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.downgrade(config, "0001")

        async with database.engine.begin() as conn:
            await conn.run_sync(downgrade)
        await database.open()  # what the next start does
        store = DirectoryStore(database)
        await store.put_key(key_record("o", org="acme"), actor="t", action="create", before=None)
        stored = await store.key("o")
        assert stored is not None
        assert stored.org == "acme"

    async def test_keys_round_trip_and_every_change_bumps_the_revision(
        self, database: Database
    ) -> None:
        store = DirectoryStore(database)
        assert await store.revision() == 0
        record = key_record(
            "a",
            org="acme",
            models=["m1"],
            limits={"rpm": 5},
            budget={"max_usd": 2.5},
            metadata={"x": [1]},
        )
        await store.put_key(record, actor="tester", action="create", before=None)
        assert await store.key("a") == record
        assert await store.revision() == 1
        revoked = record.model_copy(update={"revoked_at": T0 + 1, "updated_at": T0 + 1})
        await store.put_key(revoked, actor="tester", action="revoke", before=record)
        assert await store.revision() == 2
        assert (await store.key("a")) == revoked
        assert await store.key("missing") is None
        await store.put_key(key_record("b", team="t"), actor="x", action="create", before=None)
        assert [k.id for k in await store.keys()] == ["a", "b"]
        assert [k.id for k in await store.keys(team="t")] == ["b"]
        assert [k.id for k in await store.keys(include_revoked=False)] == ["b"]

    async def test_subjects_and_the_audit_log(self, database: Database) -> None:
        store = DirectoryStore(database)
        team = SubjectRecord(
            kind="team", id="research", budget={"max_usd": 9}, created_at=T0, updated_at=T0
        )
        await store.put_subject(team, actor="admin", action="create", before=None)
        assert await store.subject("team", "research") == team
        assert await store.subject("user", "research") is None
        await store.delete_subject(team, actor="admin", at=T0 + 5)
        assert await store.subjects("team") == []
        entries = await store.audit()
        assert [e.action for e in entries] == ["delete", "create"]
        assert entries[0].before is not None
        assert entries[0].before["budget"]["max_usd"] == 9
        assert entries[0].after is None
        assert await store.revision() == 2

    async def test_ledger_inserts_are_idempotent_by_event_id(self, database: Database) -> None:
        ledger = LedgerStore(database)
        await ledger.insert([event("e1"), event("e2")])
        await ledger.insert([event("e2"), event("e3", cost_usd=0.125, org="acme")])
        await ledger.insert([])
        assert await ledger.count() == 3
        stored = {e.id: e for e in await ledger.events()}
        assert stored["e3"] == event("e3", cost_usd=0.125, org="acme")

    async def test_concurrent_shipments_of_one_batch_store_it_once(
        self, database: Database
    ) -> None:
        ledger = LedgerStore(database)
        batch = [event(f"c{i}") for i in range(50)]
        await asyncio.gather(*(ledger.insert(batch) for _ in range(4)))
        assert await ledger.count() == 50

    async def test_spend_reports_and_event_listing(self, database: Database) -> None:
        ledger = LedgerStore(database)
        await ledger.insert(
            [
                event("e1", team="red", cost_usd=1.0),
                event("e2", team="red", cost_usd=2.0, model="m2", created_at=T0 + 10),
                event("e3", team="blue", key_id="b", cost_usd=0.25, created_at=T0 + 20),
                event("e4", team=None, key_id=None, status="rate_limit_exceeded", cost_usd=0.0),
            ]
        )
        by_team = {row.group: row for row in await ledger.spend("team")}
        assert by_team["red"].cost_usd == pytest.approx(3.0)
        assert by_team["red"].requests == 2
        assert by_team["red"].prompt_tokens == 20
        assert by_team["(none)"].requests == 1
        by_model = {row.group: row.requests for row in await ledger.spend("model", since=T0 + 5)}
        assert by_model == {"m2": 1, "m1": 1}
        assert await ledger.spent("team", "red", T0 + 5) == pytest.approx(2.0)
        assert await ledger.spent("key", "nobody", 0) == 0.0
        listed = await ledger.events(since=T0 + 5, limit=1)
        assert [e.id for e in listed] == ["e2"]
        assert await ledger.count(status="ok") == 3


class TestSQLite(OnSQLite, SQLConformance):
    pass


class TestPostgres(OnPostgres, SQLConformance):
    pass
