"""Prompt templates stored in the gateway: named, versioned, owned.

Revision ID: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompt_templates",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("template", sa.Text, nullable=False),
        sa.Column("system", sa.Text),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("owner_kind", sa.String(8)),
        sa.Column("owner_id", sa.String(200)),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("deleted_at", sa.Float),
    )
    op.create_index("ix_prompt_templates_owner", "prompt_templates", ["owner_kind", "owner_id"])


def downgrade() -> None:
    op.drop_index("ix_prompt_templates_owner", "prompt_templates")
    op.drop_table("prompt_templates")
