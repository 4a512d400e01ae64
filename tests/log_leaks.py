"""No key reaches any log of the whole test run.

:class:`LeakWatch` records every virtual key that the admin API creates or
rotates in the test process (a wrapper around the two functions that make
them), keeps every Python log record the run emits (a root handler writing
to a file), and at the end searches those records and every log file of the
servers that integration tests started (``server-*.log`` under the run's
temporary directory) for each recorded key, its secret part alone, and
anything shaped like a gatehouse key (which also catches keys created inside
server processes, which this process never sees).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from gatehouse.gateway import admin
from gatehouse.gateway.keys import KEY_PREFIX

KEY_SHAPE = re.compile(re.escape(KEY_PREFIX) + r"[0-9a-f]{16}_[A-Za-z0-9_-]{16,}")
SERVER_LOGS = "server-*.log"


class LeakWatch:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.python_log = root / "python-logs.txt"
        self.keys: set[str] = set()
        self._handler = logging.FileHandler(self.python_log, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(admin, "new_key", self._recording(admin.new_key, 1))
        monkeypatch.setattr(admin, "new_secret", self._recording(admin.new_secret, 0))
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
        return sorted(set(found))
