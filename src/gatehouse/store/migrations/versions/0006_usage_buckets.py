"""Usage buckets: cache writes and reasoning tokens in the ledger and its daily rollups.

``prompt_tokens`` include ``cached_tokens`` (cache reads) and the new
``cache_write_tokens``; ``completion_tokens`` include the new
``reasoning_tokens`` (see :mod:`gatehouse.core.usage`). Rows recorded before
this migration have 0 in both: their cost was charged without them.

Revision ID: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_NEW = ("cache_write_tokens", "reasoning_tokens")


def upgrade() -> None:
    for name in _NEW:
        op.add_column(
            "ledger_events",
            sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0")),
        )
    # The rollups also gain the cache-read sum's companions; their cached_tokens
    # exists since 0004.
    for name in _NEW:
        op.add_column(
            "ledger_rollups",
            sa.Column(name, sa.BigInteger, nullable=False, server_default=sa.text("0")),
        )


def downgrade() -> None:
    for table in ("ledger_rollups", "ledger_events"):
        with op.batch_alter_table(table) as batch:
            for name in reversed(_NEW):
                batch.drop_column(name)
