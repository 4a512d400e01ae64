"""The errors a :class:`~gatehouse.client.Client` raises, drawn as a tree::

    ClientError                        base of everything the client raises
    ├── APIConnectionError             no HTTP answer: refused, reset, DNS (retried)
    │   └── APITimeoutError            no answer within the timeout (not retried)
    ├── APIStatusError                 an HTTP error answer (status, type, code, request_id)
    │   ├── BadRequestError            400 and other 4xx without a class of their own
    │   ├── AuthenticationError        401 invalid_api_key
    │   ├── PermissionDeniedError      403 permission_denied (scope, model, another team's key)
    │   ├── NotFoundError              404 not_found / model_not_found
    │   ├── ConflictError              409 conflict
    │   ├── RateLimitError             429 rate_limit_exceeded (retried, Retry-After honoured)
    │   │   └── BudgetExceededError    429 insufficient_quota / budget_exceeded (not retried)
    │   └── InternalServerError        5xx (retried)
    ├── StreamError                    an ``{"error": ...}`` event after a stream started
    └── ResponseFormatError            a 2xx answer that is not of the expected shape

Each :class:`APIStatusError` carries the HTTP ``status``, the OpenAI error
``type``, ``code`` and ``param`` from the body, the server's ``x-request-id``
(``request_id``) to find the call in the gateway's logs, and the
``Retry-After`` it was sent with, in seconds.

The client classifies by status code and the structured body, never by
message text.
"""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of every error the gatehouse client raises."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class APIConnectionError(ClientError):
    """The server could not be reached or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """No answer within the client's timeout. Not retried: the call may have run."""


class ResponseFormatError(ClientError):
    """A successful answer whose body is not what the endpoint promises."""


class APIStatusError(ClientError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.body = body

    def __str__(self) -> str:
        where = f", request {self.request_id}" if self.request_id else ""
        return f"{self.status} {self.code or self.type or 'error'}: {self.message}{where}"


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class PermissionDeniedError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class BudgetExceededError(RateLimitError):
    """A hard budget refused the call: waiting does not help until the period turns."""


class InternalServerError(APIStatusError):
    pass


class StreamError(ClientError):
    """The server reported a failure after a stream had started (its last event)."""

    def __init__(self, message: str, *, type: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.type = type
        self.code = code


_BY_STATUS: dict[int, type[APIStatusError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    429: RateLimitError,
}


def status_error_class(status: int, type: str | None, code: str | None) -> type[APIStatusError]:
    """The class of an error answer, from its status and the body's ``type``/``code``."""
    if status == 429 and (type == "insufficient_quota" or code == "budget_exceeded"):
        return BudgetExceededError
    if status >= 500:
        return InternalServerError
    return _BY_STATUS.get(status, BadRequestError)
