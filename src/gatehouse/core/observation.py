"""What the gateway reports about each finished request, for metrics and the access log.

One :class:`RequestRecord` per request, built once by the gateway's outermost
stage after the last byte; every consumer (Prometheus, the access log) reads
the same figures, so they cannot disagree with each other or with the ledger,
which is charged from the same token counts and cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gatehouse.core.errors import ErrorType

Refusal = Literal["rate_limit", "budget"]


# Not frozen: a frozen dataclass sets each of its fields through
# ``object.__setattr__``, which tripled the cost of building one per request.
@dataclass(slots=True)
class RequestRecord:
    """One finished request. Never holds a credential, nor request or response text
    unless body logging is on (and then only redacted).

    ``model`` is the name the client asked for; ``group`` and ``deployment``
    what served it (``None`` when nothing did: a cache hit, a refusal).
    ``input_tokens`` include ``cached_tokens`` (cache reads) and
    ``cache_write_tokens``, and ``output_tokens`` include ``reasoning_tokens``,
    as the OpenAI usage object counts them (see :mod:`gatehouse.core.usage`).
    ``refusal`` is set when the gateway's own limits or budgets turned the
    request away; ``error_type`` is the failure's class in the closed
    vocabulary of :func:`gatehouse.core.errors.error_type`. ``guard`` lists
    each guard rule that acted on the request or its answer, with its action
    (``("entities.EMAIL", "mask")``): rule names only, never the text.
    ``upstream`` is the time spent in calls to deployments, summed over
    attempts (for a stream, until its last chunk): not the admission queue,
    not the backoff between retries, not the gateway's own stages; ``None``
    when no deployment was called. ``key_id`` is the public id of the virtual
    key that called (never its secret), ``None`` for other callers.
    ``request_body`` and ``response_body`` are set only when body logging is
    on, and then hold the texts already redacted (secrets, personal data).
    """

    request_id: str
    endpoint: str
    model: str
    group: str | None
    deployment: str | None
    principal: str | None
    team: str | None
    status: int
    error_type: ErrorType | None
    error_code: str | None
    refusal: Refusal | None
    seconds: float
    ttft: float | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int
    cost_usd: float
    cache: str | None
    coalesced: bool
    retries: int
    fallbacks: int
    stream: bool
    guard: tuple[tuple[str, str], ...] = ()
    upstream: float | None = None
    key_id: str | None = None
    request_body: str | None = None
    response_body: str | None = None
    cache_write_tokens: int = 0


class FinishedRequestsOnly:
    """The router's per-attempt reports, ignored.

    The base of an observer (``gatehouse.gateway.observer.Observer``) that needs
    only :class:`RequestRecord` s of finished requests: the access log, alerts.
    """

    def attempt(self, deployment: str, outcome: str) -> None:
        return None

    def upstream_error(self, group: str, deployment: str, kind: ErrorType) -> None:
        return None

    def retry(self, group: str) -> None:
        return None

    def fallback(self, group: str) -> None:
        return None

    def admission_wait(self, deployment: str, seconds: float) -> None:
        return None
