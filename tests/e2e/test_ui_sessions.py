"""Sessions in a real browser (Debian's Chromium, headless) against a real
gatehouse process: logging out in one browser ends the session in another that
holds a copy of its cookie, and repeated wrong keys on the login form end on a
page that says to wait (429 with ``Retry-After``). Screenshots of both go to
``test-artifacts/e2e/``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ..integration.conftest import RunningServer, start_server, stop_server
from .conftest import log_in, screenshot

pytestmark = pytest.mark.integration

MASTER = "sk-master-e2e-sessions-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    env = {
        "GATEHOUSE_MASTER_KEY": MASTER,
        "GATEHOUSE_AUTH__FAILED_ATTEMPTS__LOGIN_PER_ADDRESS": "2",
    }
    running = start_server(tmp_path_factory.mktemp("e2e-sessions") / "data", env=env)
    yield running
    stop_server(running)


def test_logging_out_ends_the_session_in_every_browser(
    page: Page, browser: Browser, server: RunningServer
) -> None:
    base = server.base_url
    log_in(page, base, MASTER, then="/ui/keys")
    other = browser.new_context()
    try:
        other.add_cookies(page.context.cookies())
        copy = other.new_page()
        copy.goto(f"{base}/ui/keys")
        expect(copy.get_by_role("heading", name="Keys")).to_be_visible()
        page.get_by_role("button", name="Log out").click()
        page.wait_for_url(f"{base}/ui/login")
        copy.goto(f"{base}/ui/keys")
        copy.wait_for_url(f"{base}/ui/login?next=/ui/keys")
        expect(copy.get_by_label("API key")).to_be_visible()
        screenshot(copy, "session-copy-after-logout")
    finally:
        other.close()


def test_wrong_keys_end_on_a_page_that_says_to_wait(
    page: Page, server: RunningServer, expected_console_errors: list[str]
) -> None:
    """Last in this module: it leaves the test's address refused."""
    base = server.base_url
    # Chromium logs the login page's own answers; nothing else may be logged.
    expected_console_errors.extend(
        f"{base}/ui/login: Failed to load resource: the server responded with a status of {s}"
        for s in (401, 429)
    )
    page.goto(f"{base}/ui/login")
    for _ in range(2):
        page.get_by_label("API key").fill("sk-not-the-master-key")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("alert")).to_have_text("That key was not accepted.")
    page.get_by_label("API key").fill(MASTER)
    with page.expect_response(f"{base}/ui/login") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 429
    assert int(answer.value.headers["retry-after"]) > 0
    expect(page.get_by_role("alert")).to_contain_text("Too many failed logins from your address")
    screenshot(page, "login-too-many-failures")
    # The API is another door with its own count: the master key still works there.
    models = httpx.get(f"{base}/v1/models", headers={"authorization": f"Bearer {MASTER}"})
    assert models.status_code == 200
