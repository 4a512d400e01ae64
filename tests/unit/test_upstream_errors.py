"""Upstream failures are classified from status codes and structured bodies."""

from __future__ import annotations

import orjson
import pytest

from gatehouse.core.errors import (
    ContentPolicyError,
    ContextLengthExceededError,
    InvalidRequestError,
    RateLimitError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gatehouse.providers.upstream_errors import classify, parse_retry_after


def test_openai_context_length_is_recognised_by_code() -> None:
    body = orjson.dumps(
        {
            "error": {
                "message": "too long",
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    )
    error = classify(400, body, {"x-request-id": "req_up"}, dialect="openai", deployment="d")
    assert isinstance(error, ContextLengthExceededError)
    assert error.upstream_request_id == "req_up"
    assert not error.retryable
    assert error.to_dict()["error"]["upstream_request_id"] == "req_up"


def test_the_message_text_never_decides() -> None:
    body = (
        b'{"error": {"message": "context_length_exceeded rate limit content policy", "code": null}}'
    )
    error = classify(400, body, {}, dialect="openai", deployment="d")
    assert type(error) is InvalidRequestError


def test_content_policy_by_code() -> None:
    body = b'{"error": {"message": "no", "code": "content_policy_violation"}}'
    assert isinstance(classify(400, body, {}, dialect="openai", deployment="d"), ContentPolicyError)
    gemini = orjson.dumps(
        {
            "error": {
                "code": 400,
                "message": "blocked",
                "status": "INVALID_ARGUMENT",
                "details": [{"reason": "SAFETY"}],
            }
        }
    )
    assert isinstance(
        classify(400, gemini, {}, dialect="gemini", deployment="d"), ContentPolicyError
    )


@pytest.mark.parametrize(
    ("status", "kind", "retryable"),
    [
        (401, UpstreamAuthError, False),
        (403, UpstreamAuthError, False),
        (404, UpstreamError, False),
        (408, UpstreamTimeoutError, True),
        (409, UpstreamError, True),
        (422, InvalidRequestError, False),
        (429, RateLimitError, True),
        (500, UpstreamError, True),
        (503, UpstreamError, True),
        (529, UpstreamError, True),
    ],
)
def test_status_decides_class_and_retryability(status: int, kind: type, retryable: bool) -> None:
    error = classify(status, b"not json", {}, dialect="anthropic", deployment="d")
    assert type(error) is kind
    assert error.retryable is retryable
    assert "d" in error.message


def test_anthropic_and_client_status_pass_through() -> None:
    body = b'{"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}'
    error = classify(400, body, {"request-id": "req_a"}, dialect="anthropic", deployment="d")
    assert error.http_status == 400
    assert error.error_code == "invalid_request_error"
    assert error.upstream_request_id == "req_a"


def test_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None
    error = classify(429, b"{}", {"retry-after": "7"}, dialect="openai", deployment="d")
    assert error.retry_after == 7.0
