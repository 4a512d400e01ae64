"""The serving process's signals: SIGTERM drains, SIGHUP reloads the configuration.

uvicorn handles SIGTERM by closing the listening socket at once, waiting for
open connections (up to ``timeout_graceful_shutdown``) and then running the
app's shutdown (which ships the outbox). Behind a load balancer that is one
step too early: the balancer still routes to the replica until its readiness
probe fails. So :class:`Lifecycle` puts itself in front of uvicorn's handler:
the first SIGTERM marks the process draining (``/readyz`` answers 503 from
then on), keeps serving for ``shutdown_delay`` seconds, and only then hands
the signal on. A second SIGTERM hands it on at once.

The handlers are installed from the app's start-up, inside uvicorn's own
signal capture, so they wrap whichever handler uvicorn installed, in one
process and in every worker alike; and they are put back at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

log = logging.getLogger("gatehouse.server")

Handler = Callable[[int, FrameType | None], Any] | int | None


class Lifecycle:
    """Whether this process is draining, and the signal handlers that say so."""

    def __init__(self, *, shutdown_delay: float = 0.0) -> None:
        self.shutdown_delay = shutdown_delay
        self.draining = False
        self._previous: dict[int, Handler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reload: Callable[[], Awaitable[object]] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None

    def install(self, reload: Callable[[], Awaitable[object]] | None = None) -> None:
        """Handle SIGTERM (drain, then uvicorn's shutdown) and, given ``reload``,
        SIGHUP. Call on the event loop, in the main thread."""
        self._loop = asyncio.get_running_loop()
        self._reload = reload
        self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_term)
        if reload is not None:
            self._previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hup)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        for task in self._tasks:
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()

    def _on_term(self, sig: int, frame: FrameType | None) -> None:
        assert self._loop is not None
        if self.draining:  # asked twice: stop waiting
            self._loop.call_soon_threadsafe(self._hand_on, sig)
            return
        self.draining = True
        log.info(
            "SIGTERM: not ready from now on; closing the port in %.1fs, then draining",
            self.shutdown_delay,
        )
        self._loop.call_soon_threadsafe(self._hand_on_later, sig)

    def _hand_on_later(self, sig: int) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(self.shutdown_delay, self._hand_on, sig)

    def _hand_on(self, sig: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        handler = self._previous.get(sig)
        if callable(handler):
            handler(sig, None)

    def _on_hup(self, sig: int, frame: FrameType | None) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._start_reload)

    def _start_reload(self) -> None:
        assert self._reload is not None
        task = asyncio.ensure_future(self._logged(self._reload()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _logged(reload: Awaitable[object]) -> None:
        # The reload logs what it applied or why it refused; anything else is a bug
        # that must not take the server down.
        try:
            await reload
        except Exception:
            log.exception("SIGHUP: the configuration reload failed")
