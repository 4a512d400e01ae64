"""Prompt patterns as generators of model calls, run by either client.

A pattern's logic is written once, free of I/O, as a generator that yields
the model calls it needs (a :class:`ChatCompletionRequest` or an
:class:`EmbeddingRequest`) and is sent their answers; :func:`run` drives it
with a blocking :class:`~gatehouse.client.Client`, :func:`arun` with an
:class:`~gatehouse.client.AsyncClient`. A failed call is thrown into the
generator, which may handle it (structured output falls back when a
deployment refuses ``response_format``) or let it propagate.

Every call goes through the client, so it runs as the client's key: scopes,
limits, budgets and the ledger apply as to any other call.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Generic, TypeVar

from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingRequest,
    EmbeddingResponse,
)

if TYPE_CHECKING:
    from gatehouse.client import AsyncClient, Client

T = TypeVar("T")
ModelCall = ChatCompletionRequest | EmbeddingRequest
ModelAnswer = ChatCompletion | EmbeddingResponse
Flow = Generator[ModelCall, ModelAnswer, T]


def ask(request: ChatCompletionRequest) -> Flow[ChatCompletion]:
    """One chat call inside a flow: ``completion = yield from ask(request)``."""
    answer = yield request
    if not isinstance(answer, ChatCompletion):
        raise TypeError(f"a chat call was answered with {type(answer).__name__}")
    return answer


def embed(request: EmbeddingRequest) -> Flow[EmbeddingResponse]:
    """One embeddings call inside a flow."""
    answer = yield request
    if not isinstance(answer, EmbeddingResponse):
        raise TypeError(f"an embeddings call was answered with {type(answer).__name__}")
    return answer


def text_of(completion: ChatCompletion) -> str:
    """The first choice's text ('' when the model said nothing)."""
    if not completion.choices:
        return ""
    return completion.choices[0].message.content or ""


def tokens_used(completion: ChatCompletion) -> int:
    return completion.usage.total_tokens


class Stepper(Generic[T]):
    """Steps a flow: hands it each answer (or failure) and returns its next call.

    ``step`` returns ``None`` once the flow has finished; its value is then
    ``result``. Both drivers (and tests' scripted ones) use it.
    """

    def __init__(self, flow: Flow[T]) -> None:
        self._flow = flow
        self._started = False
        self.result: T

    def step(
        self, answer: ModelAnswer | None = None, failure: BaseException | None = None
    ) -> ModelCall | None:
        try:
            if failure is not None:
                return self._flow.throw(failure)
            if not self._started:
                self._started = True
                return next(self._flow)
            if answer is None:
                raise RuntimeError("a model call of the flow got no answer")
            return self._flow.send(answer)
        except StopIteration as stop:
            self.result = stop.value
            return None


def run(flow: Flow[T], client: Client) -> T:
    """Drive ``flow`` with a blocking client; its return value is returned."""
    from gatehouse.client import ClientError

    stepper = Stepper(flow)
    call = stepper.step()
    while call is not None:
        try:
            if isinstance(call, ChatCompletionRequest):
                answer: ModelAnswer = client.complete(call)
            else:
                answer = client.embed_request(call)
        except ClientError as exc:
            call = stepper.step(failure=exc)
        else:
            call = stepper.step(answer)
    return stepper.result


async def arun(flow: Flow[T], client: AsyncClient) -> T:
    """Drive ``flow`` with an asyncio client."""
    from gatehouse.client import ClientError

    stepper = Stepper(flow)
    call = stepper.step()
    while call is not None:
        try:
            if isinstance(call, ChatCompletionRequest):
                answer: ModelAnswer = await client.complete(call)
            else:
                answer = await client.embed_request(call)
        except ClientError as exc:
            call = stepper.step(failure=exc)
        else:
            call = stepper.step(answer)
    return stepper.result
