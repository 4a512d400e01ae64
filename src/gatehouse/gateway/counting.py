"""Token counting for ``/v1/messages/count_tokens`` and ``/v1/responses/input_tokens``.

A count describes what the model group's first deployment would be charged,
by the best method that deployment allows, named in the answer:

1. ``tokenizer`` or ``provider``: the provider counts itself (a
   :class:`~gatehouse.providers.base.TokenCounter`): the local model with its
   own tokenizer and chat template, exactly what a chat call is charged;
   Anthropic and Gemini upstreams through their count endpoints.
2. ``tiktoken``: an OpenAI-compatible deployment whose upstream model tiktoken
   knows (``gpt-4o``, ``gpt-4.1``, ``o3``, ...), counted with its encoding.
3. ``estimate``: otherwise, :func:`gatehouse.catalog.tokens.prompt_tokens`
   (4 characters a token, 4 tokens of framing a message).

An upstream count that fails (unreachable, 5xx, rate-limited) falls back to
the next method rather than failing the call: a count is advice. Counting
costs nothing and is not metered, but the caller needs the ``chat`` scope and
access to the model, as a chat call would.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from gatehouse.catalog.tokens import CountMethod, openai_encoding, prompt_tokens, tiktoken_tokens
from gatehouse.core.errors import (
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamError,
)
from gatehouse.core.principal import Principal
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.gateway.routing.registry import ModelRegistry
from gatehouse.providers.base import TokenCounter

log = logging.getLogger("gatehouse.counting")

# Deployments whose upstream model names are OpenAI's (and so tiktoken's).
OPENAI_PROVIDERS = frozenset({"openai_compat", "azure"})


@dataclass(frozen=True, slots=True)
class TokenCount:
    input_tokens: int
    method: CountMethod


async def count_tokens(
    registry: ModelRegistry, request: ChatCompletionRequest, principal: Principal
) -> TokenCount:
    """The input tokens of ``request`` for the caller ``principal`` (403 without the
    ``chat`` scope or access to the model; 404 for an unknown model)."""
    principal.require("chat")
    if not principal.may_use(request.model):
        raise PermissionDeniedError(
            f"This key may not use the model '{request.model}'.", param="model"
        )
    deployment = registry.chat(request.model).deployments[0]
    # A traced provider counts as the one it traces (a count is no upstream call).
    provider = getattr(deployment.provider, "wrapped", deployment.provider)
    if isinstance(provider, TokenCounter):
        try:
            return TokenCount(await provider.count_tokens(request), provider.count_method)
        except (UpstreamError, RateLimitError, ServiceUnavailableError) as exc:
            log.warning("%s could not count tokens (%s): counting here", deployment.id, exc)
    config = deployment.config
    if config is not None and config.provider in OPENAI_PROVIDERS:
        encoding = await asyncio.to_thread(openai_encoding, config.model)
        if encoding is not None:
            return TokenCount(tiktoken_tokens(request, encoding), "tiktoken")
    return TokenCount(prompt_tokens(request), "estimate")
