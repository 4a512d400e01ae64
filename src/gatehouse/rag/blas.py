"""Query-time matrix products on one BLAS thread.

A search's products are small: a 5,000 x 384 matrix times one vector takes
about 0.1 ms on one core. But OpenBLAS spreads any product past ~9,000
elements over every core, and its threads spin while they wait; in the server
the embedding model's ONNX Runtime threads spin on the same cores right after
they embed the query. On 2 cores the two pools fought over that one product
for 10-15 ms. So a search runs its products on one thread (:func:`one_thread`).

The limit is set through ``threadpoolctl`` (a dependency, imported on first
search); without it, searches run as before.
The BLAS thread count is process-wide, so overlapping searches share one
limit: the first to enter sets it, the last to leave restores it.

threadpoolctl (3.8 here; older releases had no such rule) lets only one
Python thread change OpenBLAS's thread count: the first that did, for as long
as it lives; calls from any other thread are silently ignored. Searches run
on the event loop's worker threads, any of them, so from the second worker
on the limit did nothing and the products ran on both cores again (10-20 ms
instead of 0.3-0.4 at 5,000 to 8,000 rows under load). Every change here
takes that control first.
"""

from __future__ import annotations

import importlib
import threading
from types import TracebackType
from typing import Any


class _OneThread:
    """Context manager: BLAS on one thread while any holder is inside."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._controller: Any = None  # looked up on first use; False when unavailable
        self._limiter: Any = None

    def __enter__(self) -> None:
        with self._lock:
            if self._holders == 0:
                controller = self._controller
                if controller is None:
                    controller = self._controller = _controller()
                if controller is not False:
                    _take_control(controller)
                    self._limiter = controller.limit(limits=1, user_api="blas")
            self._holders += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._limiter is not None:
                _take_control(self._controller)
                self._limiter.restore_original_limits()
                self._limiter = None


def _controller() -> Any:
    try:
        module = importlib.import_module("threadpoolctl")
    except ImportError:
        return False
    return module.ThreadpoolController()


def _take_control(controller: Any) -> None:
    """Make the calling thread the one threadpoolctl lets set OpenBLAS's thread count.

    Only this module changes it in gatehouse, always under ``_OneThread``'s
    lock, so taking control from whichever thread had it is safe.
    """
    for library in controller.lib_controllers:
        # Absent from older threadpoolctl, which let any thread set the count.
        release = getattr(library, "clear_controlling_thread", None)
        if release is not None:
            release(force=True)


one_thread = _OneThread()
