"""RAG counters and latency: the engine's observer (``gatehouse.rag.observer.RagObserver``).

Labels are bounded: the caller's team, the operation (ingest, search,
answer), the retrieval mode (hybrid, dense, keyword, rrf) and the error's
class. Never a collection name: callers choose those, so they could add
series without end.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from gatehouse.core.errors import ErrorType

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class RagMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.documents = Counter(
            "gatehouse_rag_documents_total",
            "Documents sent for ingestion, by result (added, replaced, unchanged).",
            ["team", "result"],
            registry=registry,
        )
        self.chunks = Counter(
            "gatehouse_rag_chunks_total",
            "Chunks written for added or replaced documents.",
            ["team"],
            registry=registry,
        )
        self.queries = Counter(
            "gatehouse_rag_queries_total",
            "Searches and answers asked for, by retrieval mode (answers: hybrid).",
            ["team", "operation", "mode"],
            registry=registry,
        )
        self.errors = Counter(
            "gatehouse_rag_errors_total",
            "Failed ingests, searches and answers, by error type.",
            ["team", "operation", "type"],
            registry=registry,
        )
        self.seconds = Histogram(
            "gatehouse_rag_duration_seconds",
            "Time an ingest, search or answer took (a streamed answer: to its last event).",
            ["operation"],
            buckets=_BUCKETS,
            registry=registry,
        )

    def ingested(
        self, team: str | None, added: int, replaced: int, unchanged: int, chunks: int
    ) -> None:
        team = team or ""
        for result, count in (("added", added), ("replaced", replaced), ("unchanged", unchanged)):
            if count:
                self.documents.labels(team, result).inc(count)
        if chunks:
            self.chunks.labels(team).inc(chunks)

    def queried(self, team: str | None, operation: str, mode: str) -> None:
        self.queries.labels(team or "", operation, mode).inc()

    def finished(
        self, team: str | None, operation: str, seconds: float, error: ErrorType | None
    ) -> None:
        self.seconds.labels(operation).observe(seconds)
        if error is not None:
            self.errors.labels(team or "", operation, error).inc()
