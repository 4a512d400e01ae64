// gatehouse dashboard behaviour. Loaded with script-src 'self': no inline script anywhere.
// - [data-copy="ID"] buttons copy the text of element ID to the clipboard.
// - forms with [data-confirm="question"] ask before they submit.
// - gatehouse.csrfToken() / gatehouse.fetch() give fetch() calls the session's CSRF token.
"use strict";

window.gatehouse = {
  csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  },
  fetch(url, options = {}) {
    const headers = new Headers(options.headers || {});
    headers.set("X-CSRF-Token", window.gatehouse.csrfToken());
    return fetch(url, { credentials: "same-origin", ...options, headers });
  },
};

document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  if (!source) return;
  const status = document.getElementById(button.dataset.copy + "-status");
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    if (status) status.textContent = "Copied.";
  } catch (error) {
    // No clipboard permission (plain http, or denied): select the text to copy by hand.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    if (status) status.textContent = "Selected: press Ctrl+C to copy.";
  }
});

document.addEventListener("submit", (event) => {
  const question = event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});
