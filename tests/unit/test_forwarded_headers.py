"""Behind a TLS-terminating proxy: uvicorn believes X-Forwarded-* only from the
peers ``server.forwarded_allow_ips`` names, and ignores them when it is unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.core.config import Settings
from gatehouse.server import runner


@pytest.mark.parametrize(
    ("allowed", "proxy_headers"), [(None, False), ("10.0.0.0/8,127.0.0.1", True), ("*", True)]
)
def test_forwarded_headers_are_believed_only_from_the_named_proxies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, allowed: str | None, proxy_headers: bool
) -> None:
    started: list[dict[str, object]] = []
    monkeypatch.setattr(runner.uvicorn, "run", lambda app, **options: started.append(options))
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "local": {"chat": {"enabled": False}},
            "server": {"forwarded_allow_ips": allowed},
        }
    )
    runner.serve(settings)
    (options,) = started
    assert options["proxy_headers"] is proxy_headers
    assert options["forwarded_allow_ips"] == allowed
