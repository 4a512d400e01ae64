"""The one error hierarchy of gatehouse.

Every error a client can see is a :class:`GatehouseError`. Each class knows the
HTTP status it maps to and the OpenAI error ``type`` and ``code`` it carries, so
the server turns any of them into ``{"error": {"message", "type", "param",
"code"}}`` without guessing::

    GatehouseError                         500 server_error / internal_error
    ├── InvalidRequestError                400 invalid_request_error
    │   ├── InvalidJSONError               400 invalid_json
    │   ├── ValidationFailedError          400 invalid_value (param names the field)
    │   ├── UnsupportedParameterError      400 unsupported_parameter
    │   ├── ContextLengthExceededError     400 context_length_exceeded
    │   ├── NotFoundError                  404 not_found
    │   │   └── ModelNotFoundError         404 model_not_found
    │   ├── MethodNotAllowedError          405 method_not_allowed
    │   ├── RequestTimeoutError            408 request_timeout (a client too slow to send)
    │   ├── ConflictError                  409 conflict
    │   ├── RequestTooLargeError           413 request_too_large
    │   ├── UnsupportedMediaTypeError      415 unsupported_media_type
    │   ├── HeadersTooLargeError           431 request_headers_too_large
    │   └── ContentPolicyError             400 content_policy_violation (an upstream refused)
    │       └── GuardrailViolationError    400 content_policy_violation (a guard rule blocked)
    ├── AuthenticationError                401 invalid_request_error / invalid_api_key
    ├── PermissionDeniedError              403 permission_denied
    ├── RateLimitError                     429 rate_limit_exceeded
    ├── BudgetExceededError                429 insufficient_quota / budget_exceeded
    ├── UpstreamError                      502 upstream_error (an upstream failed)
    │   ├── UpstreamConnectionError        502 upstream_unreachable
    │   ├── UpstreamTimeoutError           504 upstream_timeout
    │   └── UpstreamAuthError              502 upstream_auth_failed
    ├── ServiceUnavailableError            503 service_unavailable
    │   ├── QueueFullError                 503 admission_queue_full
    │   ├── AdmissionTimeoutError          503 admission_timeout
    │   └── MissingExtraError              503 missing_extra (pip install 'gatehouse[...]')
    └── InternalError                      500 internal_error

An instance may carry a more precise status or code than its class (an
upstream's 422 or its own ``code``), the ``Retry-After`` an upstream asked for,
and the upstream's request id, which is added to the error body so an operator
can follow a failure into the provider's logs.

An error may also carry response ``headers`` (the ``x-ratelimit-*`` set of a
429 from admission); the server sends them with the body.

Configuration problems are :class:`ConfigError`, and a database schema that
does not fit this version is :class:`SchemaError`: both are raised at start-up
and never sent over HTTP.

For metrics and logs, :func:`error_type` sorts any failure into a closed
vocabulary (:data:`ERROR_TYPES`) by its class alone.
"""

from __future__ import annotations

from typing import ClassVar, Literal, get_args


class GatehouseError(Exception):
    """Base of every error a client can see."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        upstream_request_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.error_code = code or type(self).code
        self.http_status = status or type(self).status
        self.retry_after = retry_after
        self.upstream_request_id = upstream_request_id
        self.headers = headers or {}
        # Set by the upstream classifier: may another attempt (or deployment) succeed?
        self.retryable = False

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI-shaped error body."""
        body: dict[str, str | None] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.error_code,
        }
        if self.upstream_request_id:
            body["upstream_request_id"] = self.upstream_request_id
        return {"error": body}


class InvalidRequestError(GatehouseError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidJSONError(InvalidRequestError):
    code = "invalid_json"


class ValidationFailedError(InvalidRequestError):
    code = "invalid_value"


class UnsupportedParameterError(InvalidRequestError):
    code = "unsupported_parameter"


class ContextLengthExceededError(InvalidRequestError):
    code = "context_length_exceeded"


class NotFoundError(InvalidRequestError):
    status = 404
    code = "not_found"


class ContentPolicyError(InvalidRequestError):
    """The provider refused the content; a content-policy fallback may retry elsewhere."""

    code = "content_policy_violation"


class GuardrailViolationError(ContentPolicyError):
    """A guard ``block`` rule fired on the request. The message names the rule and
    what it found (``a US_SSN value``, ``content in category 'weapons'``), never
    the text itself; the request never reaches an upstream."""

    def __init__(self, rule: str, subject: str) -> None:
        super().__init__(
            f"The request was blocked by the guardrail rule '{rule}': "
            f"it contains {subject}, which this gateway does not accept."
        )
        self.rule = rule


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"

    def __init__(self, model: str, *, hint: str | None = None) -> None:
        # ``hint``: why a model gatehouse knows is not served here (an extra not installed).
        message = f"The model '{model}' is not available: {hint}" if hint else None
        super().__init__(message or f"The model '{model}' does not exist.", param="model")
        self.model = model


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    code = "method_not_allowed"


class RequestTimeoutError(InvalidRequestError):
    """The client did not send its request's headers or body in time (slowloris)."""

    status = 408
    code = "request_timeout"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class UnsupportedMediaTypeError(InvalidRequestError):
    status = 415
    code = "unsupported_media_type"


class ConflictError(InvalidRequestError):
    status = 409
    code = "conflict"


class HeadersTooLargeError(InvalidRequestError):
    status = 431
    code = "request_headers_too_large"


class AuthenticationError(GatehouseError):
    """A missing, malformed, unknown, revoked or expired credential.

    The message never says which: telling a caller that a key id exists but
    the secret is wrong, or that a token's signature checked out but its
    audience did not, would help someone guessing.
    """

    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"

    def __init__(self, message: str = "Invalid authentication credentials.") -> None:
        super().__init__(message, headers={"www-authenticate": "Bearer"})


class PermissionDeniedError(GatehouseError):
    """An authenticated caller lacks the scope or the model is not allowed to it."""

    status = 403
    type = "invalid_request_error"
    code = "permission_denied"


class RateLimitError(GatehouseError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceededError(GatehouseError):
    """A hard budget would be exceeded. 429, as OpenAI answers an exhausted quota."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class UpstreamError(GatehouseError):
    """An upstream deployment failed in a way that is not the client's fault."""

    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamConnectionError(UpstreamError):
    code = "upstream_unreachable"


class UpstreamTimeoutError(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamAuthError(UpstreamError):
    """The gateway's credentials for an upstream were refused: an operator problem."""

    code = "upstream_auth_failed"


class ServiceUnavailableError(GatehouseError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class QueueFullError(ServiceUnavailableError):
    """A deployment's admission queue is full."""

    code = "admission_queue_full"


class AdmissionTimeoutError(ServiceUnavailableError):
    """A request waited in a deployment's admission queue past its deadline."""

    code = "admission_timeout"


class MissingExtraError(ServiceUnavailableError):
    """A feature needs an optional part of gatehouse that is not installed.

    The message names the extra and the command that installs it."""

    code = "missing_extra"

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the {extra!r} extra: pip install 'gatehouse[{extra}]'")
        self.feature = feature
        self.extra = extra


class InternalError(GatehouseError):
    """An unexpected failure; the message carries the request id, never a trace."""


ErrorType = Literal[
    "rate_limit",
    "timeout",
    "auth",
    "bad_request",
    "server",
    "connection",
    "content_policy",
    "other",
]
ERROR_TYPES: tuple[ErrorType, ...] = get_args(ErrorType)

# Looked up along the error's MRO, so the most specific class decides.
_ERROR_TYPES: dict[type[BaseException], ErrorType] = {
    RateLimitError: "rate_limit",
    UpstreamTimeoutError: "timeout",
    AdmissionTimeoutError: "timeout",
    TimeoutError: "timeout",
    UpstreamAuthError: "auth",
    AuthenticationError: "auth",
    PermissionDeniedError: "auth",
    ContentPolicyError: "content_policy",
    InvalidRequestError: "bad_request",
    UpstreamConnectionError: "connection",
    ConnectionError: "connection",
    UpstreamError: "server",
    ServiceUnavailableError: "server",
    InternalError: "server",
}
_BY_CLASS: dict[type[BaseException], ErrorType] = {}


def error_type(error: BaseException) -> ErrorType:
    """The error's place in :data:`ERROR_TYPES`, from its class (never its message).

    A budget refusal and anything unforeseen are ``other``.
    """
    cls = type(error)
    known = _BY_CLASS.get(cls)
    if known is not None:
        return known
    found: ErrorType = next((_ERROR_TYPES[c] for c in cls.__mro__ if c in _ERROR_TYPES), "other")
    _BY_CLASS[cls] = found
    return found


class ConfigError(Exception):
    """Invalid configuration found at start-up; the message names the bad key."""


class SchemaError(Exception):
    """The database's schema does not fit this gatehouse (newer than it knows, or
    older with upgrading off); the message says what to do. Raised at start-up and
    by ``gatehouse db upgrade``, never sent over HTTP."""
