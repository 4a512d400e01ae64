"""Metrics over several worker processes (``gatehouse serve --workers N``).

A scrape reaches one worker, chosen by the kernel. So that every scrape
tells the whole server's story, the workers run prometheus_client's
multiprocess mode: each writes its counters and histograms to files in
``PROMETHEUS_MULTIPROC_DIR``, and the worker that answers a scrape adds
them all up. The serving parent sets the directory (and empties it) before
it starts the workers, which read it when they import prometheus_client.

What is read at scrape time from a process's memory (deployment state,
admission queues, governance and access-log counts) cannot be added up
that way: the answering worker reports its own, labelled ``worker`` with
its process id, and dashboards aggregate over that label.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, values
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

ENV = "PROMETHEUS_MULTIPROC_DIR"


def active() -> bool:
    """Whether this process's metric values live in the multiprocess files."""
    return values.ValueClass is not values.MutexValue


def prepare(default: Path) -> Path:
    """Choose (``$PROMETHEUS_MULTIPROC_DIR`` or ``default``) and empty the directory
    for a new set of workers, and export it to them; call before they start."""
    directory = Path(os.environ.get(ENV) or default)
    directory.mkdir(parents=True, exist_ok=True)
    # Files of an earlier run would add its counts to this one's.
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[ENV] = str(directory)
    return directory


def shared_registry() -> CollectorRegistry:
    """A registry that reads every worker's counters and histograms from the files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry


class PerWorker(Collector):
    """The metrics of ``registry``, each sample labelled with this process's id."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._worker = str(os.getpid())

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            family.samples = [
                Sample(s.name, {**s.labels, "worker": self._worker}, *s[2:]) for s in family.samples
            ]
            yield family
