"""The web dashboard at ``/ui``: server-rendered pages behind a session cookie.

How to add a page is in ``README.md`` beside this file. What it offers:

- :func:`~gatehouse.ui.pages.ui_route`: declare a page or action (a ``RouteSpec``
  checked by the route table, with CSRF, HTML errors and security headers);
- :func:`~gatehouse.ui.pages.render`, :func:`~gatehouse.ui.pages.redirect`,
  :func:`~gatehouse.ui.pages.session_of`, :func:`~gatehouse.ui.pages.form`;
- :func:`~gatehouse.ui.login.start_session` with a :class:`~gatehouse.ui.session.UiIdentity`;
- :data:`~gatehouse.ui.routes.ROUTES`, which the app serves, and
  :func:`~gatehouse.ui.state.build_ui`, which the app calls once.
"""

from gatehouse.ui.login import LOGIN_PROVIDERS, LoginProvider, start_session
from gatehouse.ui.nav import NAV, NavItem
from gatehouse.ui.pages import form, redirect, render, session_of, ui_route
from gatehouse.ui.session import Role, UiIdentity, UiSession, role_for
from gatehouse.ui.state import UiState, build_ui

__all__ = [
    "LOGIN_PROVIDERS",
    "NAV",
    "LoginProvider",
    "NavItem",
    "Role",
    "UiIdentity",
    "UiSession",
    "UiState",
    "build_ui",
    "form",
    "redirect",
    "render",
    "role_for",
    "session_of",
    "start_session",
    "ui_route",
]
