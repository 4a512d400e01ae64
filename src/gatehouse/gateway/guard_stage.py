"""The guard stage: the guard policy applied to what goes upstream and what comes back.

On the way in (guard_in) every text of the request (chat message contents and
text parts, tool-call arguments, embedding inputs) goes through the policy:
redacted and masked values are replaced before any later stage (admission,
the caches, the upstream) sees them, and a ``block`` rule ends the request
with 400 ``content_policy_violation``. On the way out (guard_out) the values
masked in this request are put back into the answer, and into a streamed
answer as it streams, a placeholder split across chunks included.

Chat messages of the configured roles are checked for prompt-injection
signals first: ``flag`` names them in the ``x-gatehouse-guard-flags``
response header, ``block`` refuses the request.

The policy is the caller team's, key's and the model's (``guard.teams``,
``guard.keys``, ``guard.models``, and the teams' and keys' policies set through
the admin API, which take the place of the config's) over the default. The
stage exists only when some policy acts on something (or, with policies set
through the admin API, whenever the guard is enabled), so a gateway without
a guard policy pays nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import orjson

from gatehouse.core.config import GuardConfig
from gatehouse.core.errors import GuardrailViolationError, ServiceUnavailableError
from gatehouse.core.rerank import RerankRequest, RerankResponse
from gatehouse.core.types import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    ChunkChoice,
    Delta,
    EmbeddingRequest,
    EmbeddingResponse,
    TextPart,
)
from gatehouse.gateway.pipeline import CallContext, ChatStream, Next, Result, Stage
from gatehouse.guard import (
    Action,
    Policy,
    PolicySet,
    PolicyViolation,
    RequestGuard,
    StreamRestorer,
)
from gatehouse.guard.classifier import ClassifierFailed
from gatehouse.guard.injection import DATA_NOTE, wrap_as_data

# Rules whose action is ``flag`` (prompt-injection signals), comma-separated.
FLAGS_HEADER = "x-gatehouse-guard-flags"


class StoredOverrides(Protocol):
    """Entity overrides per team and key set outside the config (the admin API)."""

    @property
    def generation(self) -> int:
        """Moves whenever :meth:`overrides` may answer differently."""
        ...

    async def overrides(
        self,
    ) -> tuple[Mapping[str, Mapping[str, Action]], Mapping[str, Mapping[str, Action]]]:
        """``(teams, keys)``: each one's entity actions."""
        ...


def guard_stages(
    config: GuardConfig,
    aliases: Mapping[str, str] | None = None,
    *,
    stored: StoredOverrides | None = None,
) -> list[Stage]:
    """The guard stage for ``config``, or none when no policy acts on anything.

    With ``stored`` (policies set through the admin API), the stage exists
    whenever the guard is enabled, since a policy may be set at any time."""
    policies = PolicySet.from_config(config, aliases)
    for recognizer in policies.default.recognizers:
        recognizer.load()  # a model: loaded at start-up, not on the first request
    if stored is not None and config.enabled:
        return [GuardStage(policies, stored=stored)]
    return [GuardStage(policies)] if policies.active() else []


class GuardStage:
    def __init__(
        self, policies: Policy | PolicySet, *, stored: StoredOverrides | None = None
    ) -> None:
        self.policies = policies if isinstance(policies, PolicySet) else PolicySet(policies)
        self._stored = stored
        self._current = self.policies
        self._generation: int | None = None

    async def _policy_set(self) -> PolicySet:
        """The config's policies with the stored ones over them, rebuilt only when
        the stored ones may have changed."""
        stored = self._stored
        if stored is None:
            return self.policies
        generation = stored.generation
        if generation != self._generation:
            teams, keys = await stored.overrides()
            self._current = self.policies.with_overrides(teams=teams, keys=keys)
            self._generation = generation
        return self._current

    async def __call__(self, ctx: CallContext, call_next: Next) -> Result:
        principal = ctx.principal
        policies = await self._policy_set()
        if principal is None:
            policy = policies.policy_for(None, ctx.model)
        else:
            policy = policies.policy_for(principal.team, ctx.model, principal.key_id)
        if not policy.active():
            return await call_next(ctx)
        guard = RequestGuard(policy)
        try:
            if policy.blocking:
                # A recogniser or classifier runs a model (tens of milliseconds a
                # text): off the event loop, so other requests go on meanwhile.
                ctx.request = await asyncio.to_thread(_protect_request, ctx.request, guard)
            else:
                ctx.request = _protect_request(ctx.request, guard)
        except PolicyViolation as violation:
            ctx.guard = guard.decisions()
            raise GuardrailViolationError(violation.rule, violation.subject) from None
        except ClassifierFailed as failure:
            # A check that did not run is not a pass: fail closed.
            ctx.guard = guard.decisions()
            raise ServiceUnavailableError(
                f"The guardrail classifier behind '{failure.rule}' failed; "
                "the request was not checked and is refused."
            ) from None
        # What acted is reported with the request (metrics); the answer may add to it.
        ctx.guard = guard.decisions()
        if flags := guard.flags():
            ctx.response_headers[FLAGS_HEADER] = ",".join(flags)
        result = await call_next(ctx)
        # Masks in embeddings and reranked documents are never restored: the
        # rerank route gives documents back from the caller's own request.
        if isinstance(result, EmbeddingResponse | RerankResponse) or not (
            guard.masked or guard.filters_output
        ):
            return result
        if isinstance(result, ChatCompletion):
            completion = _restore_completion(result, guard)
            ctx.guard = guard.decisions()
            return completion
        return _restore_stream(ctx, result, guard)


# -- guard_in ---------------------------------------------------------------------


def _protect_request(
    request: ChatCompletionRequest | EmbeddingRequest | RerankRequest, guard: RequestGuard
) -> ChatCompletionRequest | EmbeddingRequest | RerankRequest:
    if isinstance(request, RerankRequest):
        documents = [guard.protect(text) for text in request.texts()]
        return request.model_copy(
            update={"query": guard.protect(request.query), "documents": documents}
        )
    if isinstance(request, EmbeddingRequest):
        if isinstance(request.input, str):
            return request.model_copy(update={"input": guard.protect(request.input)})
        if request.is_token_input():
            return request  # token ids are not text
        texts = [guard.protect(item) for item in request.texts()]
        return request.model_copy(update={"input": texts})
    if request.retrieved:
        request = _review_retrieved(request, guard)
    # Placeholders the request already holds are never issued (masks in an
    # embedding are never restored, so only chat needs this).
    for message in request.messages:
        guard.check_injection(message.text(), message.role)
        guard.reserve(message.text())
        for call in message.tool_calls or ():
            function = call.get("function")
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                guard.reserve(function["arguments"])
    messages = [_protect_message(message, guard) for message in request.messages]
    return request.model_copy(update={"messages": messages})


def _review_retrieved(request: ChatCompletionRequest, guard: RequestGuard) -> ChatCompletionRequest:
    """The retrieved passages the request quotes checked for injection signals
    (``guard.injection.retrieved``); with ``wrap``, each one with a signal is put
    between data markers where the system messages quote it, and a note that
    such text is data is added once."""
    wrapped = [p for p in request.retrieved if guard.check_retrieved(p.text)]
    if not wrapped:
        return request
    messages = list(request.messages)
    for index, message in enumerate(messages):
        if message.role != "system" or not isinstance(message.content, str):
            continue
        content = message.content
        for passage in wrapped:
            content = content.replace(passage.text, wrap_as_data(passage.text, passage.id), 1)
        if content != message.content:
            content = f"{content}\n\n{DATA_NOTE}"
            messages[index] = message.model_copy(update={"content": content})
    return request.model_copy(update={"messages": messages})


def _protect_message(message: ChatMessage, guard: RequestGuard) -> ChatMessage:
    update: dict[str, Any] = {}
    content = message.content
    if isinstance(content, str):
        update["content"] = guard.protect(content)
    elif content is not None:
        update["content"] = [
            part.model_copy(update={"text": guard.protect(part.text)})
            if isinstance(part, TextPart)
            else part
            for part in content
        ]
    if message.tool_calls:
        update["tool_calls"] = [_protect_tool_call(call, guard) for call in message.tool_calls]
    return message.model_copy(update=update)


def _protect_tool_call(call: dict[str, Any], guard: RequestGuard) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    arguments = guard.protect(function["arguments"])
    return {**call, "function": {**function, "arguments": arguments}}


# -- guard_out --------------------------------------------------------------------


def _restore_completion(completion: ChatCompletion, guard: RequestGuard) -> ChatCompletion:
    choices = []
    for choice in completion.choices:
        message = choice.message
        update: dict[str, Any] = {}
        finish = choice.finish_reason
        if message.content:
            # Content categories judge what the model wrote, before values are put back.
            checked = guard.filter_output(message.content)
            if checked.blocked is not None:
                finish = "content_filter"
            update["content"] = guard.restore(checked.text)
        if message.tool_calls:
            update["tool_calls"] = [_restore_tool_call(c, guard) for c in message.tool_calls]
        message = message.model_copy(update=update)
        choices.append(choice.model_copy(update={"message": message, "finish_reason": finish}))
    return completion.model_copy(update={"choices": choices})


def _restore_tool_call(call: dict[str, Any], guard: RequestGuard) -> dict[str, Any]:
    function = call.get("function")
    if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
        return call
    # The arguments are JSON: a restored value goes in escaped as a JSON string's content.
    arguments = guard.restore(function["arguments"], escape=_json_string_content)
    return {**call, "function": {**function, "arguments": arguments}}


def _json_string_content(value: str) -> str:
    return orjson.dumps(value).decode()[1:-1]


async def _restore_stream(
    ctx: CallContext, chunks: ChatStream, guard: RequestGuard
) -> AsyncIterator[ChatCompletionChunk]:
    try:
        async for chunk in _restored(chunks, guard, choices=_choices(ctx)):
            yield chunk
    finally:
        ctx.guard = guard.decisions()


def _choices(ctx: CallContext) -> int:
    request = ctx.request
    return request.n if isinstance(request, ChatCompletionRequest) else 1


async def _restored(
    chunks: ChatStream, guard: RequestGuard, *, choices: int
) -> AsyncIterator[ChatCompletionChunk]:
    restorers: dict[int, _ChoiceRestorer] = {}
    last: ChatCompletionChunk | None = None
    async for chunk in chunks:
        last = chunk
        if not chunk.choices:
            yield chunk
            continue
        out = []
        for choice in chunk.choices:
            restorer = restorers.get(choice.index)
            if restorer is None:
                restorer = restorers[choice.index] = _ChoiceRestorer(guard)
            if restorer.blocked:
                continue  # a content category ended this choice
            delta = restorer.delta(choice.delta, finishing=choice.finish_reason is not None)
            if restorer.blocked:
                out.append(
                    choice.model_copy(update={"delta": delta, "finish_reason": "content_filter"})
                )
            elif delta is not choice.delta:
                out.append(choice.model_copy(update={"delta": delta}))
            else:
                out.append(choice)
        if out:
            yield chunk.model_copy(update={"choices": out})
        if len(restorers) >= choices and all(r.blocked for r in restorers.values()):
            # Every choice is cut: stop the upstream, as a client that went away does.
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            return
    # A stream that ended without a finish_reason may still hold a tail back.
    tails = [(index, r.flush()) for index, r in restorers.items()]
    if last is not None and any(delta is not None for _, delta in tails):
        yield last.model_copy(
            update={
                "choices": [
                    ChunkChoice(index=index, delta=delta)
                    for index, delta in tails
                    if delta is not None
                ],
                "usage": None,
            }
        )


class _ChoiceRestorer:
    """One streamed choice: content categories on its text, then its masked values
    restored, in its content and in each of its tool calls' arguments."""

    def __init__(self, guard: RequestGuard) -> None:
        self._guard = guard
        self._filter = guard.output_filter()
        self._content = guard.restorer()
        self._tools: dict[int, StreamRestorer] = {}

    @property
    def blocked(self) -> bool:
        return self._filter is not None and self._filter.blocked is not None

    def delta(self, delta: Delta, *, finishing: bool) -> Delta:
        """``delta`` restored (itself when nothing changed); all held back at the finish
        or when a content category cuts the choice (see :attr:`blocked`)."""
        update: dict[str, Any] = {}
        content = delta.content
        text = content
        if self._filter is not None:
            text = self._filter.feed(content) if content else ""
            if finishing:
                text += self._filter.flush()
            if not text and content is None:
                text = None
        ending = finishing or self.blocked
        restored = self._content.feed(text) if text else text
        if ending and (held := self._content.flush()):
            restored = (restored or "") + held
        if restored != content:
            update["content"] = restored
        calls = delta.tool_calls
        if calls:
            calls = [self._tool_call(call) for call in calls]
        if ending and (tails := self._flush_tools()):
            calls = [*(calls or []), *tails]
        if calls is not delta.tool_calls:
            update["tool_calls"] = calls
        return delta.model_copy(update=update) if update else delta

    def flush(self) -> Delta | None:
        """What is still held back, for a stream that ended without a finish."""
        text = self._filter.flush() if self._filter is not None else ""
        content = (self._content.feed(text) if text else "") + self._content.flush() or None
        calls = self._flush_tools() or None
        if content is None and calls is None:
            return None
        return Delta(content=content, tool_calls=calls)

    def _tool_call(self, call: dict[str, Any]) -> dict[str, Any]:
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
            return call
        index = call.get("index", 0)
        restorer = self._tools.get(index)
        if restorer is None:
            # The arguments are JSON: a restored value goes in escaped.
            restorer = self._tools[index] = self._guard.restorer(escape=_json_string_content)
        arguments = restorer.feed(function["arguments"])
        return {**call, "function": {**function, "arguments": arguments}}

    def _flush_tools(self) -> list[dict[str, Any]]:
        tails = []
        for index, restorer in self._tools.items():
            if held := restorer.flush():
                tails.append({"index": index, "function": {"arguments": held}})
        return tails
