"""Classify an upstream's failure from its status code and structured error body.

Never from message text: the status decides the class, the body's ``code`` /
``type`` / ``status`` field refines it (context length, content policy), and
the headers give ``Retry-After`` and the upstream's request id. Pure functions.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from gatehouse.core.errors import (
    ContentPolicyError,
    ContextLengthExceededError,
    GatehouseError,
    InvalidRequestError,
    RateLimitError,
    RequestTooLargeError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamTimeoutError,
)

Dialect = Literal["openai", "anthropic", "gemini"]

_CONTEXT_CODES = {"context_length_exceeded", "string_above_max_length"}
_POLICY_CODES = {"content_filter", "content_policy_violation", "SAFETY", "PROHIBITED_CONTENT"}
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-goog-request-id", "apim-request-id")


def classify(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    dialect: Dialect,
    deployment: str,
) -> GatehouseError:
    """The error to raise for an upstream's non-2xx answer; ``retryable`` is set on it."""
    message, code, param = _parse_body(body, dialect)
    upstream_id = next((headers[h] for h in _REQUEST_ID_HEADERS if h in headers), None)
    retry_after = parse_retry_after(headers)
    prefix = f"Upstream {deployment} returned {status}"
    text = f"{prefix}: {message}" if message else prefix
    common: dict[str, Any] = {"upstream_request_id": upstream_id}

    error: GatehouseError
    retryable = False
    if status == 400 and (code in _CONTEXT_CODES):
        error = ContextLengthExceededError(text, param=param or "messages", **common)
    elif status in {400, 403} and code in _POLICY_CODES:
        error = ContentPolicyError(text, param=param, **common)
    elif status in {401, 403}:
        error = UpstreamAuthError(
            f"{prefix}: the upstream refused the gateway's credentials", **common
        )
    elif status == 408:
        error, retryable = UpstreamTimeoutError(text, **common), True
    elif status == 413:
        error = RequestTooLargeError(text, **common)
    elif status == 429:
        error = RateLimitError(text, retry_after=retry_after, **common)
        retryable = True
    elif status == 409 or status >= 500:
        error = UpstreamError(text, retry_after=retry_after, **common)
        retryable = True
    elif status == 404:
        error = UpstreamError(text, code="upstream_not_found", **common)
    elif 400 <= status < 500:
        error = InvalidRequestError(text, param=param, code=code, status=status, **common)
    else:
        error = UpstreamError(f"{prefix}: unexpected status", **common)
    error.retryable = retryable
    return error


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(0.0, email.utils.mktime_tz(parsed) - time.time())


def _parse_body(body: bytes, dialect: Dialect) -> tuple[str, str | None, str | None]:
    """(message, code, param) from the upstream's structured error body, when it has one."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip(), None, None
    if isinstance(data, list) and data and isinstance(data[0], dict):
        data = data[0]  # Gemini's streaming endpoint wraps errors in a list
    if not isinstance(data, dict):
        return "", None, None
    error = data.get("error")
    if not isinstance(error, dict):
        return str(data.get("message", "")), None, None
    message = str(error.get("message", ""))
    if dialect == "openai":
        code = error.get("code") or error.get("type")
        return message, str(code) if code else None, error.get("param")
    if dialect == "anthropic":
        return message, error.get("type"), None
    # Gemini: {"error": {"code": 400, "message": ..., "status": "INVALID_ARGUMENT", "details"}}
    code = error.get("status")
    for detail in error.get("details") or []:
        if isinstance(detail, dict) and detail.get("reason"):
            code = detail["reason"]
    return message, str(code) if code else None, None
