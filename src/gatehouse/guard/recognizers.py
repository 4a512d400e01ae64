"""Recognisers: detectors beyond the built-in ones, for free-text entities
(names, places) that need a model. One method; the Presidio adapter
(:mod:`gatehouse.guard.presidio`) is one."""

from __future__ import annotations

from typing import Protocol

from gatehouse.guard.entities import Entity


class Recognizer(Protocol):
    """Finds entities of :attr:`types` in a text (character offsets, end exclusive)."""

    @property
    def types(self) -> frozenset[str]: ...

    def load(self) -> None:
        """Load what it needs (a model) now rather than on the first text."""
        ...

    def find(self, text: str, types: frozenset[str]) -> list[Entity]:
        """The entities of ``types`` (a subset of :attr:`types`) in ``text``."""
        ...
