"""The playground and single sign-on in a real browser (Debian's Chromium, headless).

One gatehouse server with the real local models (SmolLM2 for chat, MiniLM for
embeddings) and a test OpenID provider. In the browser: a key logs in, chats
and sees the answer arrive in several pieces before it is done; it makes a
collection, uploads a file, asks, and opens the cited chunk; a user signs in
through the provider. Every page's console must stay free of errors, and a
screenshot of each page is saved under ``test-artifacts/e2e/``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..integration.conftest import RunningServer, start_server, stop_server
from ..integration.oidc_provider import OidcProvider
from ..integration.ui_http import new_key
from .conftest import log_in, screenshot

pytestmark = pytest.mark.integration

MASTER = "sk-master-e2e-playground-0123456789"
NOTE = """# Lighthouse keepers

The lighthouse on Skerry Point was kept by Ada Brennan from 1901 to 1934.
She climbed 112 steps every evening to light the lamp, and the lamp burned
paraffin until it was electrified in 1952.
"""


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    # Another site than the gatehouse at 127.0.0.1, with a page to approve on.
    started = OidcProvider(host="localhost", consent=True).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def server(
    provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("e2e-playground")
    config = root / "gatehouse.yaml"
    config.write_text(provider.ui_config("{ops: admin}"))
    running = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield running
    stop_server(running)


# Records the length of the answer being written each time the chat log changes.
WATCH = """() => {
  window.lengths = [];
  const log = document.getElementById("chat-log");
  new MutationObserver(() => {
    const out = log.querySelector("li.pg-assistant:last-child .pg-text");
    if (out) window.lengths.push(out.textContent.length);
  }).observe(log, { subtree: true, childList: true, characterData: true });
}"""


def test_chat_with_the_local_model_streams_into_the_page(page: Page, server: RunningServer) -> None:
    key = new_key(server, MASTER, scopes=["chat"])
    log_in(page, server.base_url, key, "/ui/playground")
    page.get_by_label("Model", exact=True).select_option("local/smollm2")
    page.get_by_label("Max tokens").fill("40")
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("System prompt").fill("You are a friendly assistant.")
    page.evaluate(WATCH)
    page.get_by_label("Message").fill("Write two sentences about the sea.")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#chat-status")).to_contain_text("Done", timeout=120_000)
    answer = page.locator("#chat-log li.pg-assistant .pg-text").inner_text()
    assert answer.strip()
    lengths: list[int] = page.evaluate("window.lengths")
    partial = {n for n in lengths if 0 < n < len(answer)}
    assert len(partial) >= 2, f"the answer arrived in one piece: {lengths}"
    assert (
        page.locator("#chat-log li.pg-user")
        .inner_text()
        .endswith("Write two sentences about the sea.")
    )
    screenshot(page, "playground-chat")

    # Stop ends a long answer where it is; the page can send again.
    page.get_by_label("Max tokens").fill("400")
    page.get_by_label("Message").fill("Tell me a long story about a lighthouse keeper.")
    page.get_by_role("button", name="Send").click()
    second = page.locator("#chat-log li.pg-assistant .pg-text").nth(1)
    expect(second).not_to_be_empty(timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#chat-status")).to_have_text("Stopped.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    stopped_at = len(second.inner_text())
    page.wait_for_timeout(500)
    assert len(second.inner_text()) == stopped_at  # nothing more arrives


def test_upload_a_document_and_open_the_cited_chunk(
    page: Page, server: RunningServer, tmp_path: Path
) -> None:
    key = new_key(server, MASTER, scopes=["chat", "embeddings", "rag:read", "rag:write"])
    log_in(page, server.base_url, key, "/ui/playground")
    page.get_by_label("New collection").fill("keepers")
    page.get_by_label("Embedding model").select_option("local/minilm")
    page.get_by_role("button", name="Create").click()
    expect(page.locator("#rag-upload-status")).to_contain_text("Created collection keepers")
    expect(page.get_by_label("Collection", exact=True)).to_have_value("keepers")

    note = tmp_path / "lighthouse.md"
    note.write_text(NOTE)
    page.get_by_label("Files").set_input_files(str(note))
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#rag-upload-status")).to_contain_text(
        "1 document(s) added", timeout=120_000
    )
    expect(page.locator("#rag-progress")).to_have_attribute("value", "100")

    page.get_by_label("Question").fill("Who kept the lighthouse on Skerry Point?")
    page.get_by_role("button", name="Ask").click()
    expect(page.locator("#rag-status")).to_have_text("Done.", timeout=120_000)
    assert page.locator("#rag-answer").inner_text().strip()
    citation = page.locator("#rag-citations button.pg-citation").first
    expect(citation).to_contain_text("upload:lighthouse.md")
    citation.click()
    chunk = page.locator("#rag-chunk")
    expect(chunk).to_be_visible()
    expect(chunk.locator("pre")).to_contain_text("Ada Brennan")
    expect(chunk).to_be_focused()
    screenshot(page, "playground-rag")


def test_single_sign_on_in_the_browser(
    page: Page, server: RunningServer, provider: OidcProvider
) -> None:
    provider.reset()
    provider.claims = {"sub": "sso-1", "email": "ada@example.com", "groups": ["ops"]}
    page.goto(f"{server.base_url}/ui/login?next=/ui/playground")
    sign_on = page.get_by_role("link", name="Sign in with single sign-on")
    expect(sign_on).to_be_visible()
    screenshot(page, "login-with-sso")
    sign_on.click()
    approve = page.get_by_role("link", name="Approve")  # on the provider's own page
    expect(approve).to_be_visible()
    approve.click()
    page.wait_for_url(f"{server.base_url}/ui/playground")
    expect(page.locator("header")).to_contain_text("ada@example.com · admin")
    assert provider.token_requests, "the code was never exchanged"
    screenshot(page, "playground-after-sso")


def test_the_playground_fits_a_narrow_screen(page: Page, server: RunningServer) -> None:
    key = new_key(server, MASTER, scopes=["chat", "rag:read", "rag:write", "embeddings"])
    page.set_viewport_size({"width": 375, "height": 800})
    log_in(page, server.base_url, key, "/ui/playground")
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 375px screen"
    answer, citations = page.locator("#rag-answer"), page.locator("#rag-citations")
    # One column: the citations stack under the answer instead of beside it.
    assert citations.bounding_box()["y"] > answer.bounding_box()["y"]  # type: ignore[index]
    screenshot(page, "playground-narrow")
