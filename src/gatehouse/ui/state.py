"""What the dashboard holds per app: sessions, templates, static assets."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from starlette.types import Scope

from gatehouse.core.config import Settings
from gatehouse.ui.nav import nav_items
from gatehouse.ui.session import Sessions

_PACKAGE = resources.files("gatehouse.ui")


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    version: str  # content hash: asset URLs carry it, so they can be cached for long


_MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class UiState:
    """``app.state.ui``: built once when the app is built, read by every UI route."""

    settings: Settings
    sessions: Sessions
    templates: jinja2.Environment
    assets: dict[str, Asset]

    def asset_url(self, name: str) -> str:
        return f"/ui/static/{name}?v={self.assets[name].version}"


def build_ui(settings: Settings) -> UiState:
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_PACKAGE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    state = UiState(
        settings=settings,
        sessions=Sessions(settings),
        templates=templates,
        assets=_load_assets(Path(str(_PACKAGE / "static"))),
    )
    templates.globals["asset"] = state.asset_url
    templates.globals["nav_items"] = nav_items
    return state


def _load_assets(directory: Path) -> dict[str, Asset]:
    """Every file under ``static/``, by its path relative to it: the only files served."""
    assets: dict[str, Asset] = {}
    for path in sorted(directory.rglob("*")):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if not path.is_file() or media_type is None:
            continue
        body = path.read_bytes()
        name = path.relative_to(directory).as_posix()
        assets[name] = Asset(body, media_type, hashlib.sha256(body).hexdigest()[:12])
    return assets


def ui_state(scope: Scope) -> UiState:
    state: Any = scope["app"].state
    ui: UiState = state.ui
    return ui
