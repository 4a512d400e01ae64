"""Browser fixtures for the dashboard's end-to-end tests (Playwright, Debian's Chromium).

- ``browser``: one headless ``/usr/bin/chromium`` per session, driven through
  Playwright's ``executable_path`` (Playwright never downloads a browser here;
  ``make services`` installs chromium with apt when it is missing, and the tests
  are skipped with that command named if it is still absent);
- ``page``: a fresh context per test that **fails the test on any console
  error or uncaught page error** (CSP violations show up as console errors),
  but those the test lists in ``expected_console_errors``;
- ``screenshot(page, name)``: a full-page PNG under ``test-artifacts/e2e/``
  (gitignored; the path is printed), the artefacts of a run;
- ``log_in(page, base_url, key, then)``: the login form, as a person fills it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("GATEHOUSE_E2E_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="pip install -e '.[dev]' (the dev extra has playwright)"
)


# Per module, not per session: Playwright's sync API keeps an asyncio loop
# running in the main thread while it is started, and every later test that
# calls asyncio.run() (most integration tests) would fail with "cannot be
# called from a running event loop".
@pytest.fixture(scope="module")
def browser() -> Iterator[playwright_api.Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"{CHROMIUM} is missing: run `make services` (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def expected_console_errors() -> list[str]:
    """Console errors a test expects, by the text they contain (a page answered
    with 401 or 429 on purpose is logged by Chromium as a failed load)."""
    return []


@pytest.fixture
def page(
    browser: playwright_api.Browser,
    request: pytest.FixtureRequest,
    expected_console_errors: list[str],
) -> Iterator[playwright_api.Page]:
    """A fresh browser context; the test fails on any console error or page error
    but those it declared in ``expected_console_errors``."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    opened = context.new_page()
    errors: list[str] = []

    def on_console(message: playwright_api.ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"{message.location.get('url', '')}: {message.text}")

    opened.on("console", on_console)
    opened.on("pageerror", lambda error: errors.append(f"page error: {error}"))
    # Confirmation dialogs (revoke, rotate) are accepted, as the person clicking meant.
    opened.on("dialog", lambda dialog: dialog.accept())
    yield opened
    context.close()
    errors = [e for e in errors if not any(text in e for text in expected_console_errors)]
    assert not errors, f"console errors in {request.node.name}: {errors}"


def screenshot(page: playwright_api.Page, name: str) -> Path:
    """Save a full-page screenshot as a test artefact and say where."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")
    return path


def log_in(page: playwright_api.Page, base_url: str, key: str, then: str = "/ui") -> None:
    """Log in through the form and wait for the page it leads to."""
    page.goto(f"{base_url}/ui/login?next={then}")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base_url}{then}")
