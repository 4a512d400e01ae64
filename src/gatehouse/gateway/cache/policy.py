"""Whether a request may read from and write to the cache: a pure decision."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gatehouse.core.types import ChatCompletionRequest
from gatehouse.gateway.cache.keys import is_deterministic
from gatehouse.gateway.pipeline import CacheStatus, CallContext

HEADER = "x-gatehouse-cache"


@dataclass(frozen=True, slots=True)
class Decision:
    """``lookup``: may answer from the cache; ``store``: may keep the answer."""

    lookup: bool
    store: bool
    ttl: float
    namespace: str | None


def decide(
    request: ChatCompletionRequest,
    headers: Mapping[str, str],
    *,
    default_ttl: float,
    only_deterministic: bool,
) -> Decision:
    """Apply, in order: eligibility, the ``cache`` body field, ``Cache-Control``.

    ``no-cache`` means "do not answer from the cache" (the fresh answer is still
    stored, as in HTTP); ``no-store`` and ``cache.bypass`` mean neither read nor write.
    """
    options = request.cache
    ttl = options.ttl if options is not None and options.ttl is not None else default_ttl
    namespace = options.namespace if options is not None else None
    if only_deterministic and not is_deterministic(request):
        return Decision(False, False, ttl, namespace)
    if options is not None and options.bypass:
        return Decision(False, False, ttl, namespace)
    lookup = store = True
    control = headers.get("cache-control")
    if control:
        directives = {part.strip().lower() for part in control.split(",")}
        if "no-store" in directives:
            lookup = store = False
        elif "no-cache" in directives:
            lookup = False
    return Decision(lookup, store, ttl, namespace)


def mark(ctx: CallContext, status: CacheStatus) -> None:
    """Record the cache outcome. The outer cache stage decides it, except that
    a hit in an inner one (the semantic cache behind the exact) wins."""
    if ctx.cache is None or status == "hit":
        ctx.cache = status
        ctx.response_headers[HEADER] = status
