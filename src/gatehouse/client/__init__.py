"""A Python client for gatehouse, typed: chat, streams, embeddings, responses, RAG, prompts.

:class:`Client` (blocking) and :class:`AsyncClient` (asyncio) speak to a
gatehouse server over HTTP, or to an app in the same process. Both build
their calls and decide their retries with the same I/O-free code
(``_protocol``, ``_retry``); they differ only in how they send. See
``docs/client.md``.
"""

from gatehouse.client._async import AsyncChatStream, AsyncClient
from gatehouse.client._errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BudgetExceededError,
    ClientError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseFormatError,
    StreamError,
)
from gatehouse.client._models import (
    Answer,
    Citation,
    Collection,
    Document,
    IngestResult,
    Response,
    ResponseUsage,
    SearchHit,
    StoredPrompt,
)
from gatehouse.client._retry import RetryPolicy, retry_after
from gatehouse.client._sync import ChatStream, Client

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Answer",
    "AsyncChatStream",
    "AsyncClient",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "ChatStream",
    "Citation",
    "Client",
    "ClientError",
    "Collection",
    "ConflictError",
    "Document",
    "IngestResult",
    "InternalServerError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "Response",
    "ResponseFormatError",
    "ResponseUsage",
    "RetryPolicy",
    "SearchHit",
    "StoredPrompt",
    "StreamError",
    "retry_after",
]
