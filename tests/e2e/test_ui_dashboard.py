"""The dashboard in a real browser (Debian's Chromium, headless), against a real
gatehouse process in front of the fake upstream.

An admin logs in with the master key, creates a key (its secret shown once,
copied with the button), the key is used through the ``openai`` SDK, the call
appears in the logs and in the overview's spend, the key is revoked in the
browser, and the next call fails. Every page is screenshotted into
``test-artifacts/e2e/`` and no page may log a console error.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from playwright.sync_api import Page, expect

from ..integration.conftest import RunningServer, start_server, stop_server
from ..integration.fake_upstream import FakeUpstream
from ..integration.governance_helpers import write_config
from .conftest import log_in, screenshot

pytestmark = pytest.mark.integration

MASTER = "sk-master-e2e-dashboard-0123456789"
KEY = re.compile(r"gh-[0-9a-f]{16}_[A-Za-z0-9_-]+")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    upstream = FakeUpstream().start()
    root = tmp_path_factory.mktemp("e2e-dashboard")
    config = write_config(root / "gatehouse.yaml", upstream, input_price=0.0078125)
    running = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield running
    stop_server(running)
    upstream.stop()


def _sdk(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)


def _logged(server: RunningServer, key_id: str) -> bool:
    """Whether the ledger has shipped a request of this key yet."""
    response = httpx.get(
        f"{server.base_url}/admin/requests",
        params={"key": key_id},
        headers={"authorization": f"Bearer {MASTER}"},
        timeout=10,
    )
    return bool(response.json()["events"])


def test_create_use_see_and_revoke_a_key(page: Page, server: RunningServer) -> None:
    base = server.base_url
    page.goto(f"{base}/ui/keys")
    expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/keys$"))
    screenshot(page, "login")
    log_in(page, base, MASTER, "/ui/keys")

    page.get_by_label("Name", exact=True).fill("e2e-web")
    page.get_by_label("Team (optional)").fill("web")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key")
    expect(secret).to_have_text(KEY)
    key = secret.inner_text().strip()
    key_id = key[3:19]
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#new-key-status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    screenshot(page, "key-created")

    answer = _sdk(server, key).chat.completions.create(
        model="up", messages=[{"role": "user", "content": "hello from the browser test"}]
    )
    assert answer.choices[0].message.content
    deadline = time.monotonic() + 30
    while not _logged(server, key_id):  # the outbox ships within a second
        assert time.monotonic() < deadline, "the request never reached the request log"
        time.sleep(0.2)

    page.goto(f"{base}/ui/keys")
    expect(page.get_by_role("link", name="e2e-web")).to_be_visible()
    assert key not in page.content(), "a key's secret is shown only once"
    screenshot(page, "keys")

    page.goto(f"{base}/ui/logs?key={key_id}")
    rows = page.locator("table tbody tr")
    expect(rows.first).to_contain_text("up")
    expect(rows.first).to_contain_text(key_id)
    screenshot(page, "logs")
    rows.first.get_by_role("link").first.click()
    expect(page.locator("h1")).to_contain_text("Request")
    expect(page.locator("main")).to_contain_text(key_id)
    screenshot(page, "log-detail")

    page.goto(f"{base}/ui/overview")
    spend = float(page.locator("#total-spend").inner_text().split()[0])
    assert spend > 0
    chart = page.locator("figure svg[aria-label='Spend (USD)']")
    expect(chart).to_be_visible()
    assert chart.locator("rect title").filter(has_text=re.compile(r": 0\.0*[1-9]")).count() >= 1
    expect(page.locator("#top-keys + .table-wrap")).to_contain_text(key_id)
    screenshot(page, "overview")

    page.goto(f"{base}/ui/deployments")
    expect(page.locator("main")).to_contain_text("up-model")
    screenshot(page, "deployments")
    page.goto(f"{base}/ui/teams")
    screenshot(page, "teams")
    page.goto(f"{base}/ui/audit")
    expect(page.locator("main")).to_contain_text("create")
    screenshot(page, "audit")

    page.goto(f"{base}/ui/keys/{key_id}")
    page.get_by_role("button", name="Revoke key").click()
    expect(page.locator("main")).to_contain_text("revoked")
    screenshot(page, "key-revoked")
    with pytest.raises(openai.AuthenticationError):
        _sdk(server, key).chat.completions.create(
            model="up", messages=[{"role": "user", "content": "after revocation"}]
        )


def test_a_narrow_screen_keeps_every_page_usable(page: Page, server: RunningServer) -> None:
    page.set_viewport_size({"width": 375, "height": 740})
    log_in(page, server.base_url, MASTER, "/ui/overview")
    for name in ("overview", "keys", "logs", "deployments"):
        page.goto(f"{server.base_url}/ui/{name}")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"/ui/{name} scrolls sideways on a phone ({overflow}px)"
        screenshot(page, f"narrow-{name}")
    page.keyboard.press("Tab")
    expect(page.locator(".skip")).to_be_focused()  # the skip link comes first
    for name in ("keys", "logs", "teams", "overview"):
        page.goto(f"{server.base_url}/ui/{name}")
        assert page.evaluate(UNLABELLED) == [], f"/ui/{name} has fields without a label"


# The names of visible form fields that no <label> (or aria-label) names.
UNLABELLED = """() => [...document.querySelectorAll(
    'input:not([type=hidden]), select, textarea')]
  .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
  .map(e => e.name)"""
