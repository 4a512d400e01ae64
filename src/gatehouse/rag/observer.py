"""What the RAG engine reports as operations finish, for metrics.

A Protocol so the engine needs no metrics library: the server passes
``gatehouse.observability.Metrics.rag``; the CLI and tests pass nothing.
Only bounded facts cross it: the caller's team, the operation, the search
mode and the error's class, never a collection name or any text.
"""

from __future__ import annotations

from typing import Literal, Protocol

from gatehouse.core.errors import ErrorType

Operation = Literal["ingest", "search", "answer"]


class RagObserver(Protocol):
    def ingested(
        self, team: str | None, added: int, replaced: int, unchanged: int, chunks: int
    ) -> None:
        """Documents were written (and ``chunks`` chunks of the added or replaced ones)."""

    def queried(self, team: str | None, operation: Operation, mode: str) -> None:
        """A search or an answer was asked for, in retrieval ``mode``."""

    def finished(
        self, team: str | None, operation: Operation, seconds: float, error: ErrorType | None
    ) -> None:
        """An operation ended, after ``seconds``; ``error`` is its failure's class."""


class NullRagObserver:
    def ingested(
        self, team: str | None, added: int, replaced: int, unchanged: int, chunks: int
    ) -> None:
        return None

    def queried(self, team: str | None, operation: Operation, mode: str) -> None:
        return None

    def finished(
        self, team: str | None, operation: Operation, seconds: float, error: ErrorType | None
    ) -> None:
        return None
