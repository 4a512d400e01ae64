"""The SQL tables of gatehouse's governance state.

Times are epoch seconds (floats): portable between SQLite and PostgreSQL and
cheap to compare. Structured fields (scopes, limits, budgets) are JSON. The
migrations in ``migrations/versions`` create exactly these tables; a unit test
checks the two agree.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

keys = Table(
    "keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("salt", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("team", String(200)),
    Column("user", String(200)),
    Column("org", String(200)),  # migration 0002
    Column("scopes", JSON, nullable=False),
    Column("models", JSON),
    Column("expires_at", Float),
    Column("limits", JSON),
    Column("budget", JSON),
    Column("metadata", JSON),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("revoked_at", Float),
)

# Organisations, teams and users: the subjects that limits and budgets attach to beside keys.
subjects = Table(
    "subjects",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("limits", JSON),
    Column("budget", JSON),
    Column("metadata", JSON),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(200), nullable=False),
    Column("before", JSON),
    Column("after", JSON),
)

# One row: a number bumped by every change to keys or subjects, which replicas
# poll to drop their caches (revocation takes effect everywhere within a second).
state = Table(
    "state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

ledger = Table(
    "ledger_events",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("request_id", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("principal", String(200), nullable=False),
    Column("key_id", String(32)),
    Column("user", String(200)),
    Column("team", String(200)),
    Column("org", String(200)),  # migration 0002
    Column("endpoint", String(32), nullable=False),
    Column("tag", String(64)),  # migration 0003
    Column("model", String(200), nullable=False),
    Column("deployment", String(200)),
    Column("status", String(64), nullable=False),
    Column("http_status", Integer, nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    # Migration 0006: part of prompt_tokens, and of completion_tokens (core.usage).
    Column("cache_write_tokens", Integer, nullable=False, server_default=text("0")),
    Column("reasoning_tokens", Integer, nullable=False, server_default=text("0")),
    Column("cost_usd", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float),
    Column("cache_hit", Boolean, nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("error", Text),
    Column("guard", Text),  # migration 0007: rule:action pairs, see core.records.guard_text
    # When the rollup job counted this event into ``ledger_rollups`` (migration
    # 0004); NULL while pending. Purge deletes only events that have a time here.
    Column("rolled_up_at", Float),
)
Index("ix_ledger_created_at", ledger.c.created_at)
Index("ix_ledger_key_created", ledger.c.key_id, ledger.c.created_at)
Index("ix_ledger_team_created", ledger.c.team, ledger.c.created_at)
Index("ix_ledger_user_created", ledger.c.user, ledger.c.created_at)
Index("ix_ledger_org_created", ledger.c.org, ledger.c.created_at)
# Migration 0004: the request log's filters and the rollup job's queue.
Index("ix_ledger_model_created", ledger.c.model, ledger.c.created_at)
Index("ix_ledger_request_id", ledger.c.request_id)
Index(
    "ix_ledger_pending",
    ledger.c.created_at,
    sqlite_where=ledger.c.rolled_up_at.is_(None),
    postgresql_where=ledger.c.rolled_up_at.is_(None),
)

# Daily totals of the ledger (migration 0004), kept after the raw events are
# purged. One row per UTC day and combination of the dimensions below; a
# missing dimension is '' (not NULL: the primary key must match it on upsert).
# ``errors`` counts events whose status is not ``ok``; ``latency_ms`` is a sum.
rollups = Table(
    "ledger_rollups",
    metadata,
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD, UTC
    Column("team", String(200), primary_key=True),
    Column("key_id", String(32), primary_key=True),
    Column("user", String(200), primary_key=True),
    Column("org", String(200), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("deployment", String(200), primary_key=True),
    Column("requests", BigInteger, nullable=False),
    Column("errors", BigInteger, nullable=False),
    Column("cache_hits", BigInteger, nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False, server_default=text("0")),  # 0006
    Column("reasoning_tokens", BigInteger, nullable=False, server_default=text("0")),  # 0006
    Column("cost_usd", Float, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# How far each data class has been purged (migration 0004): everything of
# ``data_class`` older than ``purged_before`` is gone. Spend reads it to know
# which days only the rollups still describe.
retention = Table(
    "retention",
    metadata,
    Column("data_class", String(32), primary_key=True),
    Column("purged_before", Float, nullable=False),
    Column("purged_at", Float, nullable=False),
    Column("deleted", BigInteger, nullable=False),
)

# Stored Responses API responses (migration 0005): ``owner`` is the creating
# caller's team (or key, when it has none); only that owner reads, chains or
# deletes one. ``input_items`` is the whole input that produced the response,
# earlier turns of a ``previous_response_id`` chain included, so a chain is
# followed in one read and outlives the deletion of its earlier responses.
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(32), nullable=False),
    Column("previous_response_id", String(64)),
    Column("response", JSON, nullable=False),
    Column("input_items", JSON, nullable=False),
    # Migration 0007: whose data it is, for per-user export and deletion: the
    # creating key's user, and the end user the request named (``user``).
    Column("user", String(200)),
    Column("end_user", String(200)),
)
Index("ix_responses_owner_created", responses.c.owner, responses.c.created_at)
Index("ix_responses_user", responses.c.user)
Index("ix_responses_end_user", responses.c.end_user)

# Guard policies set through the admin API (migration 0007): a key's or a
# team's entity actions, over the config's default (see gatehouse.guard.policy).
guard_policies = Table(
    "guard_policies",
    metadata,
    Column("kind", String(16), primary_key=True),  # key | team
    Column("id", String(200), primary_key=True),
    Column("entities", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

# Prompt templates (migration 0008): one row per name and version. A version
# is never rewritten; deleting one keeps its row as a tombstone (content
# cleared, ``deleted_at`` set), so its number is never given to other
# content and a deleted name stays its owner's. ``owner_kind``/``owner_id``
# as for RAG collections (gatehouse.rag.access): NULL is administrators only.
prompt_templates = Table(
    "prompt_templates",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("template", Text, nullable=False),
    Column("system", Text),
    Column("variables", JSON, nullable=False),  # name -> {type, required, default, description}
    Column("description", Text, nullable=False),
    Column("owner_kind", String(8)),
    Column("owner_id", String(200)),
    Column("created_at", Float, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("deleted_at", Float),
)
Index("ix_prompt_templates_owner", prompt_templates.c.owner_kind, prompt_templates.c.owner_id)
