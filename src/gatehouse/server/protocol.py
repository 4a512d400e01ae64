"""uvicorn's httptools protocol, with the limits on a request it lacks, checked cheaply.

uvicorn (0.5x) closes a connection that sits idle *after* a response, but puts
no deadline on the request line and headers or on the body: a client that
connects and sends nothing, or trickles a header or a body a byte at a time
(slowloris), holds its connection, and a file descriptor, for as long as it
likes; and it keeps every header line it is sent. Here each request's head
must arrive within ``server.header_timeout_seconds`` of its first byte (or of
the connection, for the first request) and stay under :data:`MAX_HEAD_BYTES`,
and its body must be complete within ``server.body_timeout_seconds`` of the
head; otherwise the client gets an OpenAI-shaped 408 or 431 and the
connection is closed. The body's deadline runs only while the server reads:
uvicorn stops reading while a pipelined request waits for the response before
it, or while the app has not taken the body read so far, and the deadline
starts again when reading resumes (a client is not timed out for the server's
own wait). (The body's size limit is the request middleware's,
:mod:`gatehouse.server.middleware`.)

A response the client stops reading is bounded too: while the connection's
write buffer is past its high-water mark (uvicorn pauses the app's writes),
it must shrink at least once every ``server.write_timeout_seconds``, else the
connection is aborted (a slow reader that makes progress keeps its
connection, however long a large answer takes); the app, waiting to write,
sees the client leave, so a stream ends (and is recorded) and its task and any
concurrency slot are released.

The deadlines cost a request two attribute stores: a connection notes when
its head, its body or its keep-alive idleness began, and one timer per server
(:class:`_Sweeper`) looks at every connection a few times a second. A timer
per request (``call_later`` for the head, ``asyncio.timeout`` around each body
read, uvicorn's own keep-alive timer after each response) showed in a profile
of the chat route. A deadline is thus enforced up to a quarter of it late (at
most a second).

A response with a ``Content-Length`` leaves in one write, head and body
together (:class:`_HeadWithBody`): uvicorn writes them apart, a system call
and a TCP segment more per response.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

import orjson
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from gatehouse.core.errors import GatehouseError, HeadersTooLargeError, RequestTimeoutError

# The request line and headers together, as the middleware counts them (which
# answers the same 431 for a head that fits here but not there).
MAX_HEAD_BYTES = 32 * 1024 + 8 * 1024
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_WRITE_TIMEOUT = 60.0
# After a refusal, how long what the client still sends is read and dropped
# before the connection closes: closing at once with unread input makes the
# kernel reset the connection, and the client may lose the answer with it.
LINGER_SECONDS = 2.0
# The sweeper looks at each connection this often: a quarter of the shortest
# deadline, within these bounds.
MIN_SWEEP_SECONDS = 0.05
MAX_SWEEP_SECONDS = 1.0
# A connection whose check fails is logged at most this often per server (it
# is closed all the same).
SWEEP_ERROR_LOG_SECONDS = 60.0

log = logging.getLogger("gatehouse.server")


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing a refused request."""


class _Sweeper:
    """One timer for the deadlines of every connection of one server."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connections: set[GuardedHttpToolsProtocol] = set()
        self.interval = MAX_SWEEP_SECONDS
        self._timer: asyncio.TimerHandle | None = None
        self._logged_at: float | None = None  # when a failed check was last logged

    def add(self, connection: GuardedHttpToolsProtocol, shortest: float) -> None:
        self.connections.add(connection)
        self.interval = max(MIN_SWEEP_SECONDS, min(self.interval, shortest / 4))
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._sweep)

    def discard(self, connection: GuardedHttpToolsProtocol) -> None:
        self.connections.discard(connection)

    def _sweep(self) -> None:
        try:
            now = self.loop.time()
            for connection in list(self.connections):
                try:
                    connection.check_deadlines(now)
                except Exception:
                    # One connection's failure must not end every other's
                    # deadlines: it is dropped, and the sweep goes on.
                    self._failed(connection, now)
        finally:
            # No connection left: no timer either, until the next one arrives.
            self._timer = (
                self.loop.call_later(self.interval, self._sweep) if self.connections else None
            )

    def _failed(self, connection: GuardedHttpToolsProtocol, now: float) -> None:
        if self._logged_at is None or now - self._logged_at >= SWEEP_ERROR_LOG_SECONDS:
            self._logged_at = now
            log.exception("checking a connection's deadlines failed; closing the connection")
        self.connections.discard(connection)
        try:
            connection.transport.abort()
        except Exception:  # the transport is broken too: nothing more to do
            log.debug("aborting a connection whose deadlines could not be checked failed")


# A server's connections share its uvicorn ServerState, so it keys the sweeper.
_sweepers: weakref.WeakKeyDictionary[object, _Sweeper] = weakref.WeakKeyDictionary()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`HttpToolsProtocol` with deadlines on each request's head and body and a
    size limit on its head.

    uvicorn takes it as its ``http`` protocol class; the timeouts are bound with
    :func:`functools.partial`, which pickles to worker processes as it is."""

    def __init__(
        self,
        *args: Any,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout
        # Loop times at which the current head, body or keep-alive wait began;
        # None when none is under way. The sweeper compares them with the timeouts.
        self.head_since: float | None = None
        self.body_since: float | None = None
        self.idle_since: float | None = None
        # While the write buffer is past its high-water mark: since when it has
        # not shrunk, and its size then. None when writing is not paused.
        self.write_paused_since: float | None = None
        self.write_buffered = 0
        self.head_bytes = 0
        self.refused = False
        # A pipelined request's refusal, held until the response before it is out.
        self._refusal_after_response: GatehouseError | None = None
        sweeper = _sweepers.get(self.server_state)
        if sweeper is None:
            sweeper = _sweepers[self.server_state] = _Sweeper(self.loop)
        self._sweeper = sweeper

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.flow = _Reading(transport, self)
        self.head_since = self.loop.time()  # a connection that never sends a byte is closed too
        self._sweeper.add(
            self,
            min(
                self.header_timeout,
                self.body_timeout,
                self.write_timeout,
                float(self.timeout_keep_alive),
            ),
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._sweeper.discard(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn's keep-alive timer is never armed (see on_response_complete).
        # A byte after a response ends the keep-alive wait and starts the next
        # head's deadline, even one that begins no request (a blank line).
        if self.idle_since is not None:
            self.idle_since = None
            if self.head_since is None:
                self.head_since = self.loop.time()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_bytes = 0
        if self.head_since is None:
            self.head_since = self.loop.time()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.head_since = None
        self.body_since = self.loop.time()
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is previous:
            # Upgraded (a WebSocket): the connection is another protocol's now.
            self.body_since = None
            self._sweeper.discard(self)
            return
        cycle.transport = _HeadWithBody(self.transport, cycle)

    def on_message_complete(self) -> None:
        self.body_since = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        # uvicorn's, but the keep-alive wait is noted for the sweeper instead
        # of a timer armed (and cancelled) for every response.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif self._refusal_after_response is not None:
            error, self._refusal_after_response = self._refusal_after_response, None
            self._refuse(error)
        else:
            self.idle_since = self.loop.time()

    def pause_writing(self) -> None:
        self.write_paused_since = self.loop.time()
        self.write_buffered = self.transport.get_write_buffer_size()
        super().pause_writing()

    def resume_writing(self) -> None:
        self.write_paused_since = None
        super().resume_writing()

    def send_400_response(self, msg: str) -> None:
        if not self.refused:  # a refusal's _Refused surfaces as a parser error: answered already
            super().send_400_response(msg)

    def check_deadlines(self, now: float) -> None:
        """Act on whichever deadline has passed (the sweeper calls this)."""
        # Checked even on a closing connection: close() waits for the buffer to
        # drain, which a client that does not read never lets happen.
        if self.write_paused_since is not None:
            buffered = self.transport.get_write_buffer_size()
            if buffered < self.write_buffered:  # the client reads, however slowly
                self.write_paused_since, self.write_buffered = now, buffered
            elif now - self.write_paused_since > self.write_timeout:
                self.write_paused_since = None
                self.transport.abort()  # connection_lost tells the app the client left
                return
        if self.refused or self.transport.is_closing():
            return
        if self.head_since is not None and now - self.head_since > self.header_timeout:
            self._head_timed_out()
        elif (
            self.body_since is not None
            and not self.flow.read_paused  # the server's wait, not the client's
            and now - self.body_since > self.body_timeout
        ):
            self._body_timed_out()
        elif self.idle_since is not None and now - self.idle_since > self.timeout_keep_alive:
            self.idle_since = None
            self.timeout_keep_alive_handler()

    def _count(self, size: int) -> None:
        self.head_bytes += size
        if self.head_bytes > MAX_HEAD_BYTES:
            self._refuse(
                HeadersTooLargeError(
                    f"The request line and headers exceed the limit of {MAX_HEAD_BYTES} bytes."
                )
            )
            raise _Refused

    def _head_timed_out(self) -> None:
        self.head_since = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A response is still going out: a pipelined request's head is slow.
            self.cycle.keep_alive = False
            return
        self._refuse(
            RequestTimeoutError(
                f"The request headers did not arrive within {self.header_timeout:g} seconds."
            )
        )

    def _body_timed_out(self) -> None:
        self.body_since = None
        cycle = self.cycle
        error = RequestTimeoutError(
            f"The request body did not arrive within {self.body_timeout:g} seconds."
        )
        queued = [entry for entry in self.pipeline if entry[0] is cycle]
        if queued:
            # Pipelined behind a response still going out (an app that asked for
            # more input let uvicorn read again): the 408 follows that response
            # instead of being written into it, and the request is never run.
            self.pipeline.remove(queued[0])
            self.refused = True  # what the client still sends is dropped
            self._refusal_after_response = error
            return
        if cycle.response_started:
            # Answered, or answering, before the body was read: nothing to say
            # to a client that still has not sent it.
            self.transport.close()
            return
        # The app, waiting for the body, is told the client left; whatever it
        # answers then is dropped, and the client gets the 408 instead.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(error)

    def _refuse(self, error: GatehouseError) -> None:
        """Answer ``error``, and close once the client has had time to read it
        (whatever it still sends meanwhile is dropped)."""
        self.refused = True
        self.head_since = self.body_since = self.idle_since = None
        body = orjson.dumps(error.to_dict())
        head = (
            f"HTTP/1.1 {error.http_status} {_REASONS[error.http_status]}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("latin-1") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


class _Reading(FlowControl):
    """uvicorn's flow control, which also starts the body's deadline afresh when
    reading resumes: while reading is paused the client cannot send the body,
    and the sweeper does not count that time."""

    def __init__(self, transport: asyncio.Transport, protocol: GuardedHttpToolsProtocol) -> None:
        super().__init__(transport)
        self._protocol = weakref.ref(protocol)

    def resume_reading(self) -> None:
        if self.read_paused:
            protocol = self._protocol()
            if protocol is not None and protocol.body_since is not None:
                protocol.body_since = protocol.loop.time()
        super().resume_reading()


class _HeadWithBody(asyncio.Transport):
    """The transport as one response cycle writes to it: the head of a response
    with a ``Content-Length`` and a body is held back until the body's first
    write, and both leave in one.

    uvicorn writes the head when the app sends ``http.response.start``; the body
    follows at once on the hot routes (a JSON answer is whole before it starts),
    so holding the head delays nothing a client could use. A streamed (chunked)
    response and a HEAD request's head are written as before, at once."""

    __slots__ = ("_cycle", "_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        super().__init__()
        self._transport = transport
        self._cycle = cycle
        self._held = False  # a head has been seen (and perhaps held)
        self._head: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self._transport.write(head + bytes(data))
            return
        cycle = self._cycle
        if (
            not self._held
            and cycle.response_started  # not the "100 Continue" written before it
            and cycle.chunked_encoding is False
            and cycle.expected_content_length > 0
            and cycle.scope["method"] != "HEAD"
        ):
            self._held = True
            self._head = bytes(data)
            return
        self._transport.write(data)

    def _flush(self) -> None:
        head, self._head = self._head, None
        if head is not None:
            self._transport.write(head)

    def close(self) -> None:
        self._flush()  # an app that failed after its head: the head goes, as before
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def abort(self) -> None:
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
