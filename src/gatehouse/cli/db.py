"""``gatehouse db upgrade``: migrate the configured database's schema, then exit.

Safe to run from several replicas at once (see :mod:`gatehouse.store.database`
for the locks): one migrates, the others wait and find it done. With
``store.auto_upgrade: false`` servers refuse an old schema, and this command,
run once per release before the new servers start, is the only thing that
migrates.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gatehouse.core.config import Settings
from gatehouse.store.database import prepare_schema


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="the database schema")
    actions = db.add_subparsers(dest="db_command", required=True, parser_class=type(db))
    actions.add_parser(
        "upgrade", help="migrate the database to this version's schema (safe from many replicas)"
    )


def run(settings: Settings, args: argparse.Namespace) -> str:
    """Do ``args.db_command``; the one line to print. Raises ``SchemaError``."""
    migration = asyncio.run(prepare_schema(settings, upgrade=True))
    if migration.changed:
        return f"database upgraded from {migration.before or 'empty'} to {migration.after}"
    return f"database already at {migration.after}, the newest this gatehouse knows"
