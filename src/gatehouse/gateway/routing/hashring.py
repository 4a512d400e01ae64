"""Consistent hashing with bounded loads, for prefix-affinity routing.

Each deployment owns ``replicas * weight`` points on a 64-bit ring. A key goes
to the first point clockwise whose deployment is available and carries less
than ``load_factor`` times the average load (Mirrokni, Thorup and Zadimoghaddam,
"Consistent Hashing with Bounded Loads"). Adding or removing one of N
deployments moves only about 1/N of the keys.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    def __init__(self, weights: Mapping[str, float], *, replicas: int = 160) -> None:
        points: list[tuple[int, str]] = []
        for node, weight in weights.items():
            for i in range(max(1, round(replicas * weight))):
                points.append((hash64(f"{node}#{i}"), node))
        points.sort()
        self._hashes = [h for h, _ in points]
        self._nodes = [n for _, n in points]
        self._count = len(weights)

    def lookup(
        self,
        key: str,
        *,
        loads: Mapping[str, int] | None = None,
        load_factor: float = 1.25,
        available: Callable[[str], bool] = lambda _: True,
    ) -> str | None:
        """The node for ``key``: its ring successor, skipping unavailable or overloaded nodes."""
        if not self._nodes:
            return None
        loads = loads or {}
        cap = math.ceil(load_factor * (sum(loads.values()) + 1) / max(1, self._count))
        start = bisect.bisect_right(self._hashes, hash64(key)) % len(self._hashes)
        fallback: str | None = None
        seen: set[str] = set()
        for step in range(len(self._nodes)):
            node = self._nodes[(start + step) % len(self._nodes)]
            if node in seen:
                continue
            seen.add(node)
            if not available(node):
                continue
            if loads.get(node, 0) < cap:
                return node
            fallback = fallback or node
            if len(seen) == self._count:
                break
        return fallback


def prefix_key(model: str, texts: Sequence[str]) -> str:
    """The affinity key of a conversation: its model and its opening turns."""
    return model + "\x00" + "\x00".join(texts)
