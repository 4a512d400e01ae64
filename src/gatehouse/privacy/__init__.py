"""Per-user privacy: export everything kept about a user, or erase it.

:class:`Privacy` does the work for the admin API
(``/admin/privacy/users/{user}``) and ``gatehouse privacy export|delete``;
:func:`server_privacy` and :func:`cli_privacy` wire it to what each can reach.
Pseudonymous user ids in logs and analytics are
:class:`gatehouse.core.pseudonyms.Pseudonyms`. See docs/privacy.md.
"""

from gatehouse.privacy.service import DeletionReport, Privacy
from gatehouse.privacy.sql import UserDataStore, UserRows
from gatehouse.privacy.wiring import cli_privacy, collections_for, server_privacy

__all__ = [
    "DeletionReport",
    "Privacy",
    "UserDataStore",
    "UserRows",
    "cli_privacy",
    "collections_for",
    "server_privacy",
]
