"""The access log: one structured line per gateway request, written off the event loop.

The event loop hands each finished request's :class:`RequestRecord` (and the
wall-clock time) to a queue, which costs a tuple and a ``put``; a daemon
thread turns records into lines with structlog and writes them, whole lines
of at most ``PIPE_BUF`` bytes a ``write`` (atomic on a pipe, so the lines of
several worker processes sharing one do not interleave), draining everything
queued at each wake-up. JSON by default, pretty on a terminal.

A record holds no credential (the ``principal`` is a key's public id, never
its secret) and no request or response text, so neither can reach the log;
with opt-in body logging it holds the bodies redacted by the gateway
(:mod:`gatehouse.gateway.body_log`), which the line then carries.

When the stream cannot keep up (a full pipe nobody reads), lines beyond
``MAX_QUEUED`` are dropped and counted rather than queued without bound:
serving requests matters more than logging them.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

import orjson
import structlog

from gatehouse.core.observation import FinishedRequestsOnly, RequestRecord
from gatehouse.core.pseudonyms import Pseudonyms

Format = Literal["auto", "json", "pretty"]
MAX_QUEUED = 10_000
MAX_BATCH = 1024  # records rendered per wake-up of the writer thread
GATHER_SECONDS = 0.02  # how long a wake-up waits for more lines (their delay, at most)
ATOMIC_WRITE_BYTES = 4096  # POSIX PIPE_BUF on Linux: a write this small is atomic
_STOP = object()
log = logging.getLogger("gatehouse.access_log")


def access_fields(record: RequestRecord, at: float) -> dict[str, Any]:
    """The line's fields, in a fixed order (times in milliseconds); the bodies,
    already redacted, only when body logging is on."""
    fields = {
        "timestamp": datetime.datetime.fromtimestamp(at, datetime.UTC).isoformat(
            timespec="milliseconds"
        ),
        "request_id": record.request_id,
        "principal": record.principal,
        "team": record.team,
        "endpoint": record.endpoint,
        "model": record.model,
        "group": record.group,
        "deployment": record.deployment,
        "status": record.status,
        "error_type": record.error_type,
        "error_code": record.error_code,
        "refusal": record.refusal,
        "latency_ms": round(record.seconds * 1000, 3),
        "ttft_ms": None if record.ttft is None else round(record.ttft * 1000, 3),
        "upstream_ms": None if record.upstream is None else round(record.upstream * 1000, 3),
        "stream": record.stream,
        "input_tokens": record.input_tokens,
        "cached_tokens": record.cached_tokens,
        "cache_write_tokens": record.cache_write_tokens,
        "output_tokens": record.output_tokens,
        "reasoning_tokens": record.reasoning_tokens,
        "cost_usd": record.cost_usd,
        "cache": record.cache,
        "coalesced": record.coalesced,
        "retries": record.retries,
        "fallbacks": record.fallbacks,
    }
    if record.request_body is not None:
        fields["request_body"] = record.request_body
        fields["response_body"] = record.response_body
    return fields


class AccessLog(FinishedRequestsOnly):
    """An observer (``gatehouse.gateway.observer.Observer``) that logs each request.

    ``stream`` defaults to standard output; ``format="auto"`` is pretty when
    it is a terminal and JSON otherwise. :meth:`close` writes what is queued
    and stops the thread; the thread starts with the first record.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        format: Format = "auto",
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self._stream = stream or sys.stdout
        # A JWT caller's principal names its user: logged as a pseudonym when on.
        self._pseudonyms = pseudonyms or Pseudonyms(None)
        pretty = format == "pretty" or (format == "auto" and _is_terminal(self._stream))
        # structlog's renderers, called directly: a bound logger's proxy and
        # processor chain doubled the cost of a line, for nothing used here.
        # Both return ``str`` here (the JSON one through ``_json``).
        renderer: Any = (
            structlog.dev.ConsoleRenderer(colors=_is_terminal(self._stream), sort_keys=False)
            if pretty
            else structlog.processors.JSONRenderer(serializer=_json)
        )
        self._render: Callable[[Any, str, dict[str, Any]], str] = renderer
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._clock = time.time
        self.dropped = 0

    # -- the observer protocol: only finished requests are logged --

    def request_done(self, record: RequestRecord) -> None:
        if self._thread is None:
            self._start()
        if self._queue.qsize() >= MAX_QUEUED:
            if not self.dropped:
                log.warning("the access log cannot keep up; dropping lines (counted)")
            self.dropped += 1
            return
        self._queue.put((self._clock(), record))

    # -- the writer thread --

    def close(self) -> None:
        """Write every queued line, then stop the thread (a later record restarts it)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(_STOP)
        thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="gatehouse-access-log", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        render, stream = self._render, self._stream
        while True:
            # Drain what queued up while the last lines were written: under
            # load the thread wakes once for many requests, not once for each.
            items = [self._queue.get()]
            # Let a busy loop's next lines gather first: every wake-up takes
            # the GIL from the event loop, so one per batch, not one per line.
            time.sleep(GATHER_SECONDS)
            with contextlib.suppress(queue.Empty):
                while len(items) < MAX_BATCH:
                    items.append(self._queue.get_nowait())
            lines: list[str] = []
            size = 0
            for item in items:
                if item is _STOP:
                    _write(stream, lines)
                    return
                at, record = item
                fields = access_fields(record, at)
                fields["principal"] = self._pseudonyms.principal(record.principal)
                fields["event"] = "request"
                line = render(None, "info", fields) + "\n"
                # Whole lines, at most PIPE_BUF bytes a write: a write that
                # small is atomic on a pipe, so worker processes sharing one
                # never interleave inside a line.
                if lines and size + len(line) > ATOMIC_WRITE_BYTES:
                    _write(stream, lines)
                    lines, size = [], 0
                lines.append(line)
                size += len(line)
            _write(stream, lines)


def _write(stream: TextIO, lines: list[str]) -> None:
    if not lines:
        return
    # A line that cannot be written (a closed stream) must not stop the
    # thread: every later request's line would queue up forever.
    with contextlib.suppress(Exception):
        stream.write("".join(lines))
        stream.flush()


def _json(event: Any, **_: Any) -> str:
    return orjson.dumps(event).decode()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
