"""The LLM judge: prompts sent through the gateway as the caller, replies read, retries.

A :class:`Judge` asks one model group, through any :class:`ChatClient`: a
:class:`~gatehouse.gateway.CallerClient` in process (the caller's limits,
budget and ledger apply; calls are tagged ``eval.judge``) or
:class:`~gatehouse.evals.remote.RemoteGateway` over HTTP with the caller's key.

A reply that cannot be read is asked for again, with the reason, up to
``retries`` more times; so is a call that failed for a reason that may pass
(a rate limit, an upstream error). When the attempts run out the verdict is a
:class:`Judged` without a value and with the reason: a failure, counted as
one, never a NaN and never a 0. A refusal that no retry can change (bad
credentials, a missing scope or model, an exhausted budget) stops the whole
evaluation with :class:`JudgeUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from gatehouse.core.errors import (
    AuthenticationError,
    BudgetExceededError,
    GatehouseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
)
from gatehouse.core.types import ChatCompletion, ChatCompletionRequest, ChatMessage
from gatehouse.evals.parsing import JudgeParseError
from gatehouse.evals.rag_metrics import SYSTEM

T = TypeVar("T")
MAX_RATE_LIMIT_WAIT = 30.0
REPLY_EXCERPT = 160  # characters of an unreadable reply kept in the failure's reason
# Refusals that no retry can change: they stop an evaluation instead of failing one score.
FATAL_ERRORS = (AuthenticationError, PermissionDeniedError, BudgetExceededError, NotFoundError)


class ChatClient(Protocol):
    """What the judge needs of the gateway: one chat call, as the caller."""

    async def chat(self, request: ChatCompletionRequest) -> ChatCompletion: ...


class JudgeUnavailable(GatehouseError):
    """The judge cannot be called at all (credentials, scope, model, budget)."""


@dataclass(frozen=True, slots=True)
class Judged(Generic[T]):
    """A judge's verdict: the value read, or the reason there is none."""

    value: T | None
    reason: str | None
    attempts: int


@dataclass(slots=True)
class JudgeUsage:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    unreadable: int = 0
    failed_calls: int = 0


@dataclass(slots=True)
class Judge:
    """Asks ``model`` through ``client``; ``retries`` further attempts per question."""

    client: ChatClient
    model: str
    retries: int = 2
    max_tokens: int = 512
    json_mode: bool = False
    usage: JudgeUsage = field(default_factory=JudgeUsage)

    async def ask(self, prompt: str, read: Callable[[str], T]) -> Judged[T]:
        """Ask ``prompt``; ``read`` turns the reply into a value or raises JudgeParseError."""
        messages = [
            ChatMessage(role="system", content=SYSTEM),
            ChatMessage(role="user", content=prompt),
        ]
        reason = "no attempt made"
        for attempt in range(1, self.retries + 2):
            try:
                text = await self._call(messages)
            except FATAL_ERRORS as exc:
                raise JudgeUnavailable(f"the judge {self.model} refused: {exc.message}") from exc
            except GatehouseError as exc:
                self.usage.failed_calls += 1
                reason = f"judge call failed: {exc.message}"
                if isinstance(exc, RateLimitError):
                    await asyncio.sleep(min(exc.retry_after or 1.0, MAX_RATE_LIMIT_WAIT))
                continue
            try:
                return Judged(read(text), None, attempt)
            except JudgeParseError as exc:
                self.usage.unreadable += 1
                excerpt = " ".join(text.split())[:REPLY_EXCERPT]
                reason = f"unreadable judge output: {exc}; it said {excerpt!r}"
                # Show the judge its reply and what was wrong with it, once.
                messages = [
                    *messages[:2],
                    ChatMessage(role="assistant", content=text[:2000]),
                    ChatMessage(
                        role="user",
                        content=f"That reply could not be read ({exc}). "
                        "Reply again with the JSON only, in the format asked.",
                    ),
                ]
        return Judged(None, f"{reason} (after {self.retries + 1} attempts)", self.retries + 1)

    async def _call(self, messages: list[ChatMessage]) -> str:
        request = ChatCompletionRequest(
            model=self.model,
            messages=messages,
            temperature=0.0,
            max_tokens=self.max_tokens,
            response_format={"type": "json_object"} if self.json_mode else None,
        )
        completion = await self.client.chat(request)
        self.usage.calls += 1
        self.usage.prompt_tokens += completion.usage.prompt_tokens
        self.usage.completion_tokens += completion.usage.completion_tokens
        if not completion.choices:
            return ""
        return completion.choices[0].message.content or ""
