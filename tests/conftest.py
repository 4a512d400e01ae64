"""Shared test configuration.

Unit tests must not touch the network: a socket guard refuses connections to
anything but loopback for tests not marked ``integration``.

No test may read files beside the repository (``repository_guard``): a fresh
clone has nothing there, so what a test needs ships under ``tests/fixtures/``.

No key may reach any log of the run (``log_leaks``): checked once, at the end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from . import repository_guard
from .log_leaks import LeakWatch


def pytest_configure(config: pytest.Config) -> None:
    repository_guard.install()


@pytest.fixture(autouse=True)
def _nothing_read_beside_the_repository() -> Iterator[None]:
    # The hook raises at the open; this also fails a test whose code swallowed that.
    guard = repository_guard.install()
    before = len(guard.refused)
    yield
    if refused := guard.refused[before:]:
        pytest.fail(f"the test touched paths outside the repository: {refused}")


@pytest.fixture(scope="session", autouse=True)
def _no_key_in_any_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    watch = LeakWatch(tmp_path_factory.getbasetemp())
    with pytest.MonkeyPatch.context() as patch:
        watch.install(patch)
        yield
        watch.uninstall()
    # Torn down last: every server has stopped and written its log by now.
    if leaks := watch.leaks():
        pytest.fail("keys reached the logs of this test run:\n" + "\n".join(leaks))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def _no_network_in_unit_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("integration"):
        yield
        return
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> None:
        host = address[0] if isinstance(address, tuple) else address
        if self.family == socket.AF_UNIX or host in {"127.0.0.1", "::1", "localhost"}:
            return real_connect(self, address)  # type: ignore[arg-type]
        raise RuntimeError(f"unit tests may not open network connections (to {address!r})")

    socket.socket.connect = guarded  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = real_connect  # type: ignore[method-assign]
