"""No key and no prompt reaches any log of the whole test run.

:class:`LeakWatch` records every virtual key that the admin API creates or
rotates in the test process (a wrapper around the two functions that make
them, which the admin API, the dashboard's key pages and the CLI all call)
and the prompt text of every model request the tests send through
httpx (which the openai and anthropic SDKs use, in-process and to servers
alike), keeps every Python log record the run emits (a root handler writing
to a file), and at the end searches those records and every log file of the
servers that integration tests started (``server-*.log`` under the run's
temporary directory) for each recorded key, its secret part alone, anything
shaped like a gatehouse key (which also catches keys created inside server
processes, which this process never sees) and each prompt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gatehouse.gateway import admin
from gatehouse.gateway.keys import KEY_PREFIX

KEY_SHAPE = re.compile(re.escape(KEY_PREFIX) + r"[0-9a-f]{16}_[A-Za-z0-9_-]{16,}")
SERVER_LOGS = "server-*.log"
# Requests whose bodies carry prompts, and where in the body the text is: the
# model APIs, the dashboard playground's chat, RAG documents, searches and
# answers, stored prompt templates (a chat's ``prompt`` variables are under
# ``prompt``) and token counting.
MODEL_PATHS = (
    "/chat/completions",
    "/embeddings",
    "/messages",
    "/responses",
    "/playground/chat",
    "/documents",
    "/search",
    "/answer",
    "/prompts",
    "/count_tokens",
    "/input_tokens",
)
TEXT_FIELDS = frozenset(
    {"content", "input", "text", "system", "instructions", "prompt", "template", "query"}
)
# Shorter texts ("hi", "hello") are words a log may hold for other reasons.
MIN_PROMPT_CHARS = 16


def prompt_texts(body: bytes) -> Iterator[str]:
    """The texts a model request's JSON body sends to the model."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return

    def walk(value: object, field: str | None) -> Iterator[str]:
        if isinstance(value, str):
            if field in TEXT_FIELDS and len(value) >= MIN_PROMPT_CHARS:
                yield value
        elif isinstance(value, list):
            for item in value:
                yield from walk(item, field)
        elif isinstance(value, dict):
            for key, item in value.items():
                yield from walk(item, key if key in TEXT_FIELDS else field)

    yield from walk(data, None)


class LeakWatch:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python_log = root / "python-logs.txt"
        self.keys: set[str] = set()
        self.prompts: set[str] = set()
        self._handler = logging.FileHandler(self.python_log, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(admin, "new_key", self._recording(admin.new_key, 1))
        monkeypatch.setattr(admin, "new_secret", self._recording(admin.new_secret, 0))
        monkeypatch.setattr(httpx.Client, "send", self._reading(httpx.Client.send))
        monkeypatch.setattr(httpx.AsyncClient, "send", self._reading(httpx.AsyncClient.send))
        logging.getLogger().addHandler(self._handler)

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)
        self._handler.close()

    def _recording(self, make: Callable[..., Any], index: int) -> Callable[..., Any]:
        def made(*args: Any) -> Any:
            result = make(*args)
            self.keys.add(result[index])
            return result

        return made

    def _reading(self, send: Callable[..., Any]) -> Callable[..., Any]:
        def sending(client: Any, request: httpx.Request, *args: Any, **kwargs: Any) -> Any:
            self.note(request)
            return send(client, request, *args, **kwargs)

        return sending

    def note(self, request: httpx.Request) -> None:
        """Remember the prompts of ``request`` if it asks a model."""
        if request.method == "POST" and request.url.path.endswith(MODEL_PATHS):
            try:
                body = request.content
            except httpx.RequestNotRead:  # a streamed upload: not a prompt
                return
            self.prompts.update(prompt_texts(body))

    def logs(self) -> list[Path]:
        return [self.python_log, *sorted(self.root.rglob(SERVER_LOGS))]

    def leaks(self, logs: Iterable[Path] | None = None) -> list[str]:
        """``path: what`` for each key, secret or key-shaped text found in a log."""
        # Named by their public id only: the report is a log too.
        needles = {key: f"the key {key[:19]}..." for key in self.keys}
        needles.update({key.split("_", 1)[1]: f"the secret of {key[:19]}..." for key in self.keys})
        found = []
        for path in self.logs() if logs is None else logs:
            if not path.is_file():
                continue
            text = path.read_text(errors="replace")
            found += [f"{path}: {what}" for needle, what in needles.items() if needle in text]
            found += [f"{path}: a key {m.group()[:19]}..." for m in KEY_SHAPE.finditer(text)]
            found += [f"{path}: the prompt {p[:40]!r}" for p in self.prompts if p in text]
        return sorted(set(found))
