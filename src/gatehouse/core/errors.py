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
    │   ├── RequestTooLargeError           413 request_too_large
    │   └── UnsupportedMediaTypeError      415 unsupported_media_type
    ├── ServiceUnavailableError            503 service_unavailable
    └── InternalError                      500 internal_error

Configuration problems are :class:`ConfigError`, raised at start-up and never
sent over HTTP.
"""

from __future__ import annotations

from typing import ClassVar


class GatehouseError(Exception):
    """Base of every error a client can see."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def to_dict(self) -> dict[str, dict[str, str | None]]:
        """The OpenAI-shaped error body."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


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


class ModelNotFoundError(NotFoundError):
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist.", param="model")
        self.model = model


class MethodNotAllowedError(InvalidRequestError):
    status = 405
    code = "method_not_allowed"


class RequestTooLargeError(InvalidRequestError):
    status = 413
    code = "request_too_large"


class UnsupportedMediaTypeError(InvalidRequestError):
    status = 415
    code = "unsupported_media_type"


class ServiceUnavailableError(GatehouseError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class InternalError(GatehouseError):
    """An unexpected failure; the message carries the request id, never a trace."""


class ConfigError(Exception):
    """Invalid configuration found at start-up; the message names the bad key."""
