"""Searches run their matrix products on one BLAS thread, from whichever worker thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

threadpoolctl = pytest.importorskip("threadpoolctl")

from gatehouse.rag.blas import one_thread  # noqa: E402


@pytest.fixture
def blas(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """numpy's BLAS at two threads, set (and so controlled) by another, live thread."""
    assert np.ones((2, 2)) @ np.ones(2) is not None  # numpy's BLAS is loaded
    # one_thread looks its libraries up on first use; an earlier test's use, before
    # other libraries were loaded (scipy's OpenBLAS), must not decide this one.
    monkeypatch.setattr(one_thread, "_controller", None)
    controller = threadpoolctl.ThreadpoolController().select(user_api="blas")
    if not controller.lib_controllers:
        pytest.skip("numpy has no BLAS that threadpoolctl knows")
    library = controller.lib_controllers[0]
    original = library.get_num_threads()
    set_up, done = threading.Event(), threading.Event()

    def owner() -> None:
        controller.limit(limits=2)
        set_up.set()
        done.wait(30)

    holder = threading.Thread(target=owner)
    holder.start()
    set_up.wait(30)
    if library.get_num_threads() != 2:
        done.set()
        holder.join()
        pytest.skip("this BLAS cannot run on two threads here")
    try:
        yield library
    finally:
        done.set()
        holder.join()
        clear = getattr(library, "clear_controlling_thread", None)
        if clear is not None:
            clear(force=True)
        controller.limit(limits=original)
        if clear is not None:
            clear(force=True)


def test_one_thread_holds_in_any_worker_thread_and_restores(blas: object) -> None:
    seen: list[int] = []

    def search() -> None:
        with one_thread:
            seen.append(blas.get_num_threads())  # type: ignore[attr-defined]

    for _ in range(3):  # each search on a new thread, as the event loop's workers are
        worker = threading.Thread(target=search)
        worker.start()
        worker.join()
        assert blas.get_num_threads() == 2  # type: ignore[attr-defined]
    assert seen == [1, 1, 1]


def test_overlapping_searches_share_the_limit(blas: object) -> None:
    inside, leave = threading.Event(), threading.Event()
    seen: list[int] = []

    def first() -> None:
        with one_thread:
            inside.set()
            leave.wait(30)

    worker = threading.Thread(target=first)
    worker.start()
    inside.wait(30)
    with one_thread:
        seen.append(blas.get_num_threads())  # type: ignore[attr-defined]
    seen.append(blas.get_num_threads())  # type: ignore[attr-defined]  # the first still inside
    leave.set()
    worker.join()
    assert seen == [1, 1]
    assert blas.get_num_threads() == 2  # type: ignore[attr-defined]  # the last to leave restored
