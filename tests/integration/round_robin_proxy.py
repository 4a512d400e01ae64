"""A small round-robin TCP load balancer for tests, standing in for nginx in front of replicas.

Each client connection goes to the next backend in turn. A backend that
refuses the connection (stopped, killed) is skipped and the connection tried
on the next one, and the refusing backend is left out for ``down_for``
seconds: nginx's passive health checks (``max_fails``/``fail_timeout``) for a
connection that cannot be made. A request already sent to a backend that
then dies is not retried, as nginx does not retry a POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field


@dataclass
class RoundRobinProxy:
    backends: list[tuple[str, int]]
    down_for: float = 2.0
    port: int = 0
    refused: int = 0  # connections a backend refused (each then tried on the next)
    served: dict[int, int] = field(default_factory=dict)  # backend port -> connections
    _next: int = 0
    _down_until: dict[tuple[str, int], float] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RoundRobinProxy:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="round-robin-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None or self._server is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _order(self) -> list[tuple[str, int]]:
        """Every backend, starting with the next in turn; those marked down go last."""
        count = len(self.backends)
        start, self._next = self._next, (self._next + 1) % count
        ordered = [self.backends[(start + i) % count] for i in range(count)]
        now = time.monotonic()
        up = [b for b in ordered if self._down_until.get(b, 0.0) <= now]
        return up + [b for b in ordered if b not in up]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for backend in self._order():
            try:
                upstream_reader, upstream_writer = await asyncio.open_connection(*backend)
            except OSError:
                self.refused += 1
                self._down_until[backend] = time.monotonic() + self.down_for
                continue
            self.served[backend[1]] = self.served.get(backend[1], 0) + 1
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
            return
        writer.close()  # no backend takes connections: as a 502 would, the client sees a failure


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            sink.close()
