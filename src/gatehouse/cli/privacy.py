"""``gatehouse privacy export|delete --user U``: one user's data, from the command line.

Works on the configured database, this data directory's outbox and RAG
collections, and the Redis cache when configured, with no running server
(see docs/privacy.md for what a separate process cannot reach). Audited as
``cli:<login>``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from typing import Any

from gatehouse.core.config import Settings


def add_parser(commands: Any) -> None:
    privacy = commands.add_parser("privacy", help="export or delete everything kept about a user")
    actions = privacy.add_subparsers(
        dest="privacy_command", required=True, parser_class=type(privacy)
    )
    export = actions.add_parser("export", help="print a user's data as JSON")
    export.add_argument("--user", required=True, help="the user id (a key's user, a JWT subject)")
    delete = actions.add_parser("delete", help="erase a user's data from every store")
    delete.add_argument("--user", required=True, help="the user id (a key's user, a JWT subject)")
    delete.add_argument("--json", action="store_true", help="print the report as JSON")


def run(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from gatehouse.privacy import cli_privacy  # the stores' modules, only when used

    actor = f"cli:{getpass.getuser()}"
    async with cli_privacy(settings, clock=time.time) as privacy:
        if args.privacy_command == "export":
            data = await privacy.export(args.user, actor=actor)
            json.dump(data, sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
            return 0
        report = await privacy.delete(args.user, actor=actor)
    if args.json:
        print(json.dumps(report.public(), indent=2))
        return 0
    deleted = report.public()["deleted"]
    print(
        f"erased user {report.user_tag}: {deleted['events']} usage events, "
        f"{deleted['rollups']} rollup rows anonymised, {deleted['responses']} stored "
        f"responses, {deleted['keys']} keys revoked, {deleted['audit']} audit entries "
        f"rewritten, {deleted['cache_entries']} cache entries, "
        f"{len(deleted['collections'])} RAG collections"
    )
    for note in report.not_reached:
        print(f"not reached: {note}", file=sys.stderr)
    return 0
