"""Admission for work a route does as the caller outside a model call: rendering a
stored prompt before the call, counting tokens instead of one. Each counts as one
request against the caller's requests-per-minute limits (key, user, team,
organisation), so it cannot keep the shared renderer threads busy for free."""

from __future__ import annotations

from starlette.datastructures import State

from gatehouse.core.principal import Principal
from gatehouse.gateway import Gateway


async def admit_request(state: State, caller: Principal | None) -> dict[str, str]:
    """Count one request for ``caller`` (a 429 when a requests-per-minute limit is
    spent); the ``x-ratelimit-*-requests`` headers to answer with."""
    gateway: Gateway = state.gateway
    if gateway.governance is None:  # no keys, no limits
        return {}
    return await gateway.governance.limits.admit_request(caller)
