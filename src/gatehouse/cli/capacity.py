"""``gatehouse capacity``: the concurrency each deployment needs for a target rate.

Little's law, L = lambda * W: to serve lambda requests a second when each takes
W seconds, about lambda * W requests must be in flight. From given figures
(``--latency``) or from a running server's live latency averages (``--url``).
"""

from __future__ import annotations

import argparse
from typing import Any

import httpx

from gatehouse.gateway.routing.capacity import little_limit


def add_parser(commands: argparse._SubParsersAction[Any]) -> None:
    parser = commands.add_parser(
        "capacity", help="concurrency each deployment needs for a target request rate"
    )
    parser.add_argument("--rate", type=float, required=True, help="target requests per second")
    parser.add_argument("--latency", type=float, help="seconds per request (skip the server)")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="server to read from")
    parser.add_argument("--group", help="only this model group (rate is per group)")
    parser.add_argument("--headroom", type=float, default=1.2, help="slack factor (default 1.2)")
    parser.add_argument("--api-key", help="admin key, if the server requires one")


def run(args: argparse.Namespace) -> list[str]:
    """The lines to print; raises ``ValueError`` for bad figures, ``httpx.HTTPError`` if
    the server cannot be read."""
    if args.rate <= 0:
        raise ValueError("--rate must be positive")
    if args.headroom < 1:
        raise ValueError("--headroom must be at least 1")
    if args.latency is not None:
        if args.latency <= 0:
            raise ValueError("--latency must be positive")
        in_flight = little_limit(args.rate, args.latency, headroom=args.headroom)
        return [
            f"{args.rate:g} req/s x {args.latency:g} s x headroom {args.headroom:g} "
            f"= {in_flight} requests in flight"
        ]
    headers = {"authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    response = httpx.get(f"{args.url.rstrip('/')}/admin/deployments", headers=headers, timeout=10)
    response.raise_for_status()
    lines = [
        f"{'group':20} {'deployment':28} {'share':>6} {'latency':>9} {'needed':>7} {'limit':>6}"
    ]
    for group in response.json()["groups"]:
        if args.group and group["name"] != args.group:
            continue
        total = sum(d["weight"] for d in group["deployments"]) or 1.0
        for d in group["deployments"]:
            share = d["weight"] / total
            seconds = (d["hold_ms"] or d["latency_ms"] or 0) / 1000
            needed = (
                str(little_limit(args.rate * share, seconds, headroom=args.headroom))
                if seconds
                else "-"
            )
            latency = f"{seconds * 1000:.1f}ms" if seconds else "unmeasured"
            lines.append(
                f"{group['name']:20} {d['id']:28} {share:>6.0%} {latency:>9} {needed:>7} "
                f"{d['admission_limit']:>6}"
            )
    if len(lines) == 1:
        raise ValueError(f"no model group named {args.group!r}" if args.group else "no groups")
    return lines
