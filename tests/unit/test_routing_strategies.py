"""Each routing strategy's choice on fixed inputs."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from gatehouse.gateway.routing import CircuitBreaker, Deployment, DeploymentStats, HashRing
from gatehouse.gateway.routing.capacity import Capacity
from gatehouse.gateway.routing.strategies import choose

from .fakes import EchoChat


def deployment(name: str, weight: float = 1.0, **stats: float) -> Deployment:
    d = Deployment(
        id=name,
        group="g",
        provider=EchoChat(name),
        config=None,
        breaker=CircuitBreaker(failures=3, window=60, cooldown=10),
        stats=DeploymentStats(alpha=0.5),
        capacity=Capacity(target_rps=None, max_in_flight=64, queue_size=8, queue_timeout=1),
        weight=weight,
    )
    for key, value in stats.items():
        # The in-flight count is the capacity's (the one count); the rest are stats.
        setattr(d.capacity if key == "in_flight" else d.stats, key, value)
    return d


def test_weighted_follows_the_weights() -> None:
    pool = [deployment("a", 1), deployment("b", 3)]
    rng = random.Random(1)
    picks = Counter(choose("weighted", pool, now=0, rng=rng).id for _ in range(20_000))
    assert picks["b"] / 20_000 == pytest.approx(0.75, abs=0.02)


def test_least_inflight_picks_the_idlest() -> None:
    pool = [
        deployment("a", in_flight=3),
        deployment("b", in_flight=1),
        deployment("c", in_flight=2),
    ]
    assert choose("least_inflight", pool, now=0, rng=random.Random()).id == "b"


def test_lowest_latency_uses_ttft_for_streams_and_explores_unmeasured() -> None:
    a = deployment("a", latency=0.5, ttft=0.05)
    b = deployment("b", latency=0.2, ttft=0.3)
    rng = random.Random()
    assert choose("lowest_latency", [a, b], now=0, rng=rng).id == "b"
    assert choose("lowest_latency", [a, b], now=0, rng=rng, streaming=True).id == "a"
    fresh = deployment("fresh")
    assert choose("lowest_latency", [a, b, fresh], now=0, rng=rng).id == "fresh"


def test_lowest_usage_compares_against_capacity() -> None:
    small, big = deployment("small"), deployment("big")
    small.rpm, big.rpm = 10, 1000
    for _ in range(5):
        small.stats.count(30.0, requests=1)
    for _ in range(50):
        big.stats.count(30.0, requests=1)
    # 5/10 used versus 50/1000 used: the big one is emptier.
    assert choose("lowest_usage", [small, big], now=30.0, rng=random.Random()).id == "big"


def test_usage_window_slides_into_the_next_minute() -> None:
    stats = DeploymentStats(alpha=0.5)
    stats.count(59.0, requests=10)
    requests, _ = stats.usage(90.0)  # half-way through the next minute
    assert requests == pytest.approx(5.0)
    requests, _ = stats.usage(200.0)
    assert requests == 0


def test_prefix_affinity_sticks_to_one_deployment() -> None:
    pool = [deployment(n) for n in "abcd"]
    ring = HashRing({d.id: 1.0 for d in pool})
    rng = random.Random()
    chosen = {
        choose("prefix_affinity", pool, now=0, rng=rng, affinity_key="conv-1", ring=ring).id
        for _ in range(20)
    }
    assert len(chosen) == 1


def test_consistent_hashing_moves_about_one_nth_of_keys() -> None:
    keys = [f"conversation-{i}" for i in range(20_000)]
    before = HashRing({f"n{i}": 1.0 for i in range(4)})
    after = HashRing({f"n{i}": 1.0 for i in range(5)})
    moved = sum(before.lookup(k) != after.lookup(k) for k in keys)
    # Adding a fifth node should move about 1/5 of keys, and only to the new node.
    assert moved / len(keys) == pytest.approx(0.2, abs=0.04)
    assert all(after.lookup(k) == "n4" for k in keys if before.lookup(k) != after.lookup(k))
    removed = HashRing({f"n{i}": 1.0 for i in range(3)})
    moved_on_removal = sum(before.lookup(k) != removed.lookup(k) for k in keys)
    assert moved_on_removal / len(keys) == pytest.approx(0.25, abs=0.05)


def test_bounded_load_spills_to_the_next_node() -> None:
    ring = HashRing({"a": 1.0, "b": 1.0})
    home = ring.lookup("k")
    assert home is not None
    other = "b" if home == "a" else "a"
    # The home node already carries far more than its share: the key spills over.
    assert ring.lookup("k", loads={home: 10, other: 0}, load_factor=1.25) == other
    assert ring.lookup("k", loads={home: 1, other: 1}, load_factor=1.25) == home


def test_affinity_skips_unavailable_nodes() -> None:
    ring = HashRing({"a": 1.0, "b": 1.0, "c": 1.0})
    home = ring.lookup("key")
    assert ring.lookup("key", available=lambda n: n != home) not in {home, None}
