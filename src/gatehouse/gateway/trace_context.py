"""W3C trace context through the gateway: the hooks a tracer fills, and the
forwarding of a client's context when tracing is off.

A :class:`Tracer` wraps, once at start-up, the whole pipeline (``request``),
each stage (``stage``) and each deployment's provider (``provider``). Two
implementations:

- :class:`gatehouse.gateway.tracing.SpanTracer`, when
  ``observability.tracing.enabled``: OpenTelemetry spans, and the upstream
  call's own span as the ``traceparent`` the upstream receives;
- :class:`ClientContext`, when tracing is off (and
  ``propagate_client_context``, the default): no spans; a request carrying a
  valid ``traceparent`` has it (and its ``tracestate``) sent unchanged to
  every upstream call it causes, as a proxy would pass them, so the upstream's
  spans still join the client's trace. Without a tracer, nothing at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from gatehouse.providers.upstream import TRACE_CONTEXT

if TYPE_CHECKING:
    from gatehouse.core.config import DeploymentConfig
    from gatehouse.gateway.pipeline import CallContext, Next, Result
    from gatehouse.providers.base import AnyProvider

# version "00" exactly; a later version may append fields (W3C Trace Context, 3.2).
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_NO_TRACE = "0" * 32
_NO_SPAN = "0" * 16
# The W3C limit on tracestate: 32 members of at most 256 characters; a longer
# one may be truncated or dropped by any hop, and is dropped here.
_MAX_TRACESTATE = 512


class Tracer(Protocol):
    """What the gateway lets a tracer wrap; each method is called once, at start-up."""

    def request(self, call: Next) -> Next:
        """The whole pipeline, outermost."""
        ...

    def stage(self, name: str, call: Next) -> Next:
        """One stage (with everything inside it), or the terminal call, ``route``."""
        ...

    def provider(
        self,
        provider: AnyProvider,
        *,
        deployment: str,
        group: str,
        config: DeploymentConfig | None,
    ) -> AnyProvider:
        """A deployment's provider (``config`` is ``None`` for an in-process model):
        each call of the result is one upstream call attempt."""
        ...


class ClientContext:
    """Tracing off: a client's trace context goes on to the upstream as it came."""

    def request(self, call: Next) -> Next:
        async def forwarding(ctx: CallContext) -> Result:
            carried = client_trace_context(ctx.headers)
            if carried is None:
                return await call(ctx)
            # A stream is opened (its upstream request sent) before ``call``
            # returns, so the context is not needed after it.
            token = TRACE_CONTEXT.set(carried)
            try:
                return await call(ctx)
            finally:
                TRACE_CONTEXT.reset(token)

        return forwarding

    def stage(self, name: str, call: Next) -> Next:
        return call

    def provider(
        self,
        provider: AnyProvider,
        *,
        deployment: str,
        group: str,
        config: DeploymentConfig | None,
    ) -> AnyProvider:
        return provider


def client_trace_context(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The request's ``traceparent`` (and ``tracestate``) if the traceparent is valid.

    A malformed traceparent is dropped with its tracestate, as the W3C
    specification asks of a receiver; nothing unchecked reaches an upstream's
    request headers.
    """
    parent = headers.get("traceparent")
    if parent is None or not valid_traceparent(parent):
        return None
    carried = {"traceparent": parent}
    state = headers.get("tracestate")
    if state and len(state) <= _MAX_TRACESTATE and state.isascii() and state.isprintable():
        carried["tracestate"] = state
    return carried


def valid_traceparent(value: str) -> bool:
    found = _TRACEPARENT.fullmatch(value)
    if found is None:
        return False
    version, trace_id, span_id, _flags, rest = found.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return False
    return trace_id != _NO_TRACE and span_id != _NO_SPAN
