"""What one process serves: the roles of ``gatehouse serve --role``.

- ``all`` (the default): everything, one process, as on a laptop.
- ``gateway``: everything but the RAG API (its routes are absent: 404).
- ``rag``: the RAG API alone, with the probes and ``/metrics``. It runs no
  model of its own: its model calls go to the gateway at ``rag.gateway_url``
  over HTTP, as the caller (:mod:`gatehouse.gateway.remote`). It checks the
  caller's credential itself, against the same database (and JWT settings) as
  the gateway, so a bad key is refused before any work and revocation
  reaches it the same way.
"""

from __future__ import annotations

from gatehouse.core.config import ServerRole, Settings
from gatehouse.gateway.remote import RemoteGateway
from gatehouse.server.routes.table import RouteSpec

# The route tags of the RAG API, and of what every role serves beside its own.
RAG_TAG = "rag"
EVERY_ROLE = frozenset({"health", "ops"})


def serves(role: ServerRole, spec: RouteSpec) -> bool:
    """Whether a process of ``role`` serves the route ``spec``."""
    if role == "all":
        return True
    if role == "gateway":
        return spec.tag != RAG_TAG
    return spec.tag == RAG_TAG or spec.tag in EVERY_ROLE


def settings_for_role(settings: Settings) -> Settings:
    """``settings`` as a process of its role runs them: a RAG service loads no model
    (no local model, no configured deployment); the gateway it calls has them."""
    if settings.server.role != "rag":
        return settings
    local = settings.local
    off = {"enabled": False}
    return settings.model_copy(
        update={
            "models": [],
            "local": local.model_copy(
                update={
                    "chat": local.chat.model_copy(update=off),
                    "embeddings": local.embeddings.model_copy(update=off),
                    "rerank": local.rerank.model_copy(update=off),
                }
            ),
        }
    )


def remote_gateway(settings: Settings) -> RemoteGateway | None:
    """The gateway a RAG service sends its model calls to; ``None`` in other roles."""
    if settings.server.role != "rag" or settings.rag.gateway_url is None:
        return None
    return RemoteGateway(settings.rag.gateway_url, timeout=settings.rag.gateway_timeout_seconds)
