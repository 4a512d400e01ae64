"""A longer schemathesis run against a real gatehouse process (issue 20).

The same driver as the test (tests/integration/api_fuzz.py): every operation of
``/openapi.json`` as the master key, as a plain key, and as the plain key with
path parameters naming a collection, document, prompt and key that exist.
Prints one row per operation and caller, then the totals and every failure.

    .venv/bin/python bench/fuzz_api.py --examples 100 [--seed N]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.integration.api_fuzz import fuzz, running_target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=100, help="per operation and caller")
    parser.add_argument("--seed", type=int, default=None, help="default: a random one, printed")
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    with running_target() as target:
        started = time.perf_counter()
        results = fuzz(target, examples=args.examples, seed=seed, timeout=args.timeout)
        elapsed = time.perf_counter() - started
        tracebacks = _tracebacks(target.server.log.read_text())
    width = max(len(r.label) for r in results)
    print(f"{'operation':<{width}}  {'caller':<11}  {'examples':>8}  {'failures':>8}  statuses")
    for r in results:
        statuses = " ".join(f"{code}x{n}" for code, n in sorted(r.statuses.items()))
        print(
            f"{r.label:<{width}}  {r.caller:<11}  {r.examples:>8}  {len(r.failures):>8}  {statuses}"
        )
    operations = len({r.label for r in results})
    examples = sum(r.examples for r in results)
    failures = [f"{r.label} as {r.caller}: {f}" for r in results for f in r.failures]
    print(
        f"\n{operations} operations, {len(results)} operation x caller runs, {examples} requests, "
        f"{len(failures)} failures, {len(tracebacks)} tracebacks in the server log, "
        f"{elapsed:.0f} s (seed {seed}, {args.examples} examples each)"
    )
    for failure in failures:
        print("\n" + failure)
    for traceback in tracebacks:
        print("\n" + traceback)
    return 1 if failures or tracebacks else 0


def _tracebacks(log: str) -> list[str]:
    """Each traceback in the server's log, with the line before it (what it was
    logged as) and its last lines (the exception)."""
    found = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            end = i + 1
            while end < len(lines) and (lines[end].startswith(" ") or not lines[end].strip()):
                end += 1
            found.append("\n".join([lines[i - 1] if i else "", *lines[end - 4 : end + 1]]))
    return found


if __name__ == "__main__":
    sys.exit(main())
