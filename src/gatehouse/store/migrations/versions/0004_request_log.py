"""The request log: daily rollups of the ledger, retention state, and indexes
for the request log's filters and the rollup job's queue of pending events.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_PENDING = sa.text("rolled_up_at IS NULL")


def upgrade() -> None:
    op.add_column("ledger_events", sa.Column("rolled_up_at", sa.Float))
    op.create_index("ix_ledger_model_created", "ledger_events", ["model", "created_at"])
    op.create_index("ix_ledger_request_id", "ledger_events", ["request_id"])
    op.create_index(
        "ix_ledger_pending",
        "ledger_events",
        ["created_at"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )
    op.create_table(
        "ledger_rollups",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("team", sa.String(200), primary_key=True),
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("user", sa.String(200), primary_key=True),
        sa.Column("org", sa.String(200), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("deployment", sa.String(200), primary_key=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("cache_hits", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "retention",
        sa.Column("data_class", sa.String(32), primary_key=True),
        sa.Column("purged_before", sa.Float, nullable=False),
        sa.Column("purged_at", sa.Float, nullable=False),
        sa.Column("deleted", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention")
    op.drop_table("ledger_rollups")
    op.drop_index("ix_ledger_pending", "ledger_events")
    op.drop_index("ix_ledger_request_id", "ledger_events")
    op.drop_index("ix_ledger_model_created", "ledger_events")
    with op.batch_alter_table("ledger_events") as batch:
        batch.drop_column("rolled_up_at")
