"""``gatehouse keys ...``, ``gatehouse spend`` and ``gatehouse purge``: administration
from the command line.

They work on the configured database directly (the SQLite file in the data
directory, or ``store.database_url``), so they need no running server; running
servers pick changes up within a second. Actions are audited as ``cli:<user>``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import getpass
import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from gatehouse.core.config import Settings
from gatehouse.core.principal import ALL_SCOPES
from gatehouse.core.validation import validation_error
from gatehouse.gateway.admin import Admin, KeyCreate, parse_since
from gatehouse.gateway.keys import Directory
from gatehouse.store.database import Database
from gatehouse.store.directory import DirectoryStore
from gatehouse.store.ledger import LedgerStore
from gatehouse.store.retention import Retention
from gatehouse.store.rollups import SPEND_GROUPS, TOKEN_BUCKETS


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


def add_parsers(commands: Any) -> None:
    """Register ``keys``, ``spend`` and ``purge`` on the top-level subcommand set."""
    keys = commands.add_parser("keys", help="create, list, revoke and rotate virtual keys")
    actions = keys.add_subparsers(dest="keys_command", required=True, parser_class=type(keys))
    create = actions.add_parser("create", help="create a key; prints it once")
    create.add_argument("--name", required=True)
    create.add_argument("--team")
    create.add_argument("--user")
    create.add_argument("--org")
    create.add_argument("--scope", action="append", dest="scopes", help="repeatable")
    create.add_argument("--model", action="append", dest="models", help="repeatable")
    create.add_argument("--expires", help="ISO 8601 time (UTC when it names no offset)")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--max-parallel", type=int)
    create.add_argument("--budget", type=float, help="USD")
    create.add_argument("--period", choices=["day", "week", "month", "total"], default="month")
    create.add_argument("--soft", action="store_true", help="the budget only alerts")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--team")
    listing.add_argument("--json", action="store_true")
    for name, text in (("revoke", "revoke a key"), ("rotate", "give a key a new secret")):
        action = actions.add_parser(name, help=text)
        action.add_argument("id")

    spend = commands.add_parser("spend", help="spend report from the usage ledger")
    spend.add_argument("--by", choices=SPEND_GROUPS, default="key")
    spend.add_argument("--since", help="ISO 8601 time (default: all time)")
    spend.add_argument("--json", action="store_true")

    purge = commands.add_parser(
        "purge",
        help="roll the ledger up into daily totals, then delete data past its retention",
    )
    purge.add_argument("--json", action="store_true")


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "purge":
        return asyncio.run(_with_database(settings, lambda db: _purge(db, settings, args)))
    return asyncio.run(_with_database(settings, lambda db: _dispatch(_admin(db), args)))


async def _with_database(settings: Settings, work: Callable[[Database], Awaitable[int]]) -> int:
    database = Database.configured(settings)
    try:
        await database.open(upgrade=settings.store.auto_upgrade)
        return await work(database)
    finally:
        await database.close()


def _admin(database: Database) -> Admin:
    store = DirectoryStore(database)
    directory = Directory(store, poll_seconds=1.0)
    return Admin(store, LedgerStore(database), directory, clock=time.time)


async def _purge(database: Database, settings: Settings, args: argparse.Namespace) -> int:
    """One retention round, as every server runs each ``retention.interval_seconds``."""
    rollups = LedgerStore(database).rollups
    retention = Retention(database, settings.retention, clock=time.time, rollups=rollups)
    report = await retention.run_once()
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
        return 0
    print(
        f"rolled up {report.rolled_up} events; deleted {report.events_deleted} events, "
        f"{report.rollups_deleted} rollup rows, {report.audit_deleted} audit entries, "
        f"{report.responses_deleted} stored responses"
    )
    return 0


async def _dispatch(admin: Admin, args: argparse.Namespace) -> int:
    actor = f"cli:{getpass.getuser()}"  # holds every scope: it has the database itself
    if args.command == "spend":
        return await _spend(admin, args)
    command = args.keys_command
    if command == "create":
        created = await admin.create_key(_key_body(args), actor=actor, held_scopes=ALL_SCOPES)
        print(created.key)
        return 0
    if command == "list":
        records = await admin.keys(team=args.team)
        if args.json:
            print(json.dumps([r.public() for r in records], indent=2))
            return 0
        for record in records:
            state = "revoked" if record.revoked_at else "active"
            print(f"{record.id}\t{record.name}\t{record.team or '-'}\t{state}")
        return 0
    if command == "revoke":
        await admin.revoke_key(args.id, actor=actor)
        print(f"revoked {args.id}")
        return 0
    rotated = await admin.rotate_key(args.id, actor=actor, held_scopes=ALL_SCOPES)
    print(rotated.key)
    return 0


def _key_body(args: argparse.Namespace) -> KeyCreate:
    data: dict[str, Any] = {
        "name": args.name,
        "team": args.team,
        "user": args.user,
        "org": args.org,
    }
    if args.scopes:
        data["scopes"] = args.scopes
    if args.models:
        data["models"] = args.models
    if args.expires:
        try:  # a time without an offset is UTC, as --since reads it
            data["expires_at"] = datetime.fromtimestamp(parse_since(args.expires), UTC).isoformat()
        except ValueError as exc:
            raise UsageError(f"--expires: {exc}") from None
    limits = {"rpm": args.rpm, "tpm": args.tpm, "max_parallel": args.max_parallel}
    if any(v is not None for v in limits.values()):
        data["limits"] = limits
    if args.budget is not None:
        data["budget"] = {"max_usd": args.budget, "period": args.period, "hard": not args.soft}
    try:
        return KeyCreate.model_validate(data)
    except ValidationError as exc:
        raise UsageError(validation_error(exc).message) from None


async def _spend(admin: Admin, args: argparse.Namespace) -> int:
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        raise UsageError(f"--since: {exc}") from None
    rows = await admin.spend(args.by, since=since)
    if args.json:
        print(json.dumps({"rows": [row.model_dump() for row in rows]}, indent=2))
        return 0
    print(f"{args.by}\taccepted\trefused\t" + "\t".join(TOKEN_BUCKETS) + "\tcost_usd")
    for row in rows:
        tokens = "\t".join(str(getattr(row, name)) for name in TOKEN_BUCKETS)
        print(f"{row.group}\t{row.accepted}\t{row.refused}\t{tokens}\t{row.cost_usd:.6f}")
    return 0
