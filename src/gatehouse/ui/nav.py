"""The dashboard's navigation: one entry per top-level page, shown to roles that may see it."""

from __future__ import annotations

from dataclasses import dataclass

from gatehouse.ui.session import Role, UiSession


@dataclass(frozen=True, slots=True)
class NavItem:
    label: str
    path: str
    role: Role
    description: str
    order: int = 100  # menu position, lowest first (the built-in pages use 10 to 60)


# A page module adds its entry here and its routes to gatehouse.ui.routes.
NAV: list[NavItem] = []


def nav_items(session: UiSession) -> list[NavItem]:
    """The entries this session's role may open."""
    return sorted((item for item in NAV if session.allows(item.role)), key=lambda i: i.order)
