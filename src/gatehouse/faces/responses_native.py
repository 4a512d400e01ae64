"""Native Responses calls: a ``/v1/responses`` request sent to an upstream that speaks it.

The request still runs through the pipeline as its chat translation (``request``),
so auth, limits, budgets, the guard, the caches and the ledger see what they
always see. When the router picks a deployment whose provider is a
:class:`~gatehouse.providers.base.ResponsesProvider`, and no stage rewrote the
chat request (a guard that redacted it keeps the call on the translated path,
which carries the redaction), the deployment is sent ``body`` instead: the
client's request with the earlier turns' items in ``input`` and ``store:
false`` (gatehouse stores and chains; the upstream never sees gatehouse's ids).

The upstream's answer is given to the pipeline as a chat completion (or chunks)
with the upstream's usage, and kept here, so the route returns the upstream's
own Response (or events), under gatehouse's response id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from gatehouse.core.errors import UnsupportedParameterError, UpstreamError
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    Choice,
    ChunkChoice,
    Delta,
    Usage,
)
from gatehouse.core.usage import billed_usage
from gatehouse.faces.responses import response_usage
from gatehouse.faces.responses_items import (
    FunctionCallItem,
    IncompleteDetails,
    MessageItem,
    OutputItem,
    ReasoningItem,
    ResponseError,
    ResponseObject,
)
from gatehouse.faces.responses_reasoning import foreign
from gatehouse.providers.base import ResponsesProvider

# Fields gatehouse answers itself: never sent upstream.
_LOCAL_FIELDS = frozenset(
    {"store", "previous_response_id", "stream", "stream_options", "client_metadata"}
)
# The upstream Response's fields that are gatehouse's, not the upstream's, to say.
_OURS = ("id", "model", "previous_response_id", "store", "metadata")
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


def native_body(fields: dict[str, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """The body an upstream is sent: the client's ``fields`` (unset ones left out)
    less gatehouse's own, every turn's items as ``input``, and ``store: false``.

    The items go without their ``id``: with ``store: false`` an upstream looks an
    item id up, and refuses (404) one it did not store, which none of them are.
    Reasoning items go only with an upstream's own state (``encrypted_content``
    that gatehouse did not encode): the state of a turn that another provider
    answered through chat means nothing to this one."""
    body = {key: value for key, value in fields.items() if key not in _LOCAL_FIELDS}
    unnamed = [
        {key: value for key, value in item.items() if key != "id"}
        for item in items
        if item.get("type") != "reasoning" or _upstream_state(item.get("encrypted_content"))
    ]
    return {**body, "input": unnamed, "store": False}


def _upstream_state(content: Any) -> bool:
    return isinstance(content, str) and foreign(content)


def usage_of(usage: Any) -> Usage:
    """The Responses API's usage in gatehouse's convention (OpenAI's: input includes
    cached tokens, output includes reasoning tokens)."""
    if not isinstance(usage, dict):
        raise UpstreamError("The upstream's Response carries no usage")
    input_details = usage.get("input_tokens_details") or {}
    output_details = usage.get("output_tokens_details") or {}
    return billed_usage(
        input=int(usage.get("input_tokens") or 0),
        output=int(usage.get("output_tokens") or 0),
        cache_read=_count(input_details.get("cached_tokens")),
        reasoning=_count(output_details.get("reasoning_tokens")),
    )


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None


def for_client(upstream: dict[str, Any], shell: ResponseObject) -> dict[str, Any]:
    """The upstream's Response as the client sees it: under gatehouse's id, with the
    client's model name, chain, ``store`` and ``metadata``."""
    ours = shell.model_dump(mode="json", include=set(_OURS))
    return {**upstream, **ours}


def event_for_client(event: dict[str, Any], shell: ResponseObject) -> dict[str, Any]:
    """An upstream stream event as the client sees it (its ``response`` rewritten)."""
    response = event.get("response")
    if isinstance(response, dict):
        return {**event, "response": for_client(response, shell)}
    return event


_ITEM_MODELS: dict[str, type[MessageItem | FunctionCallItem | ReasoningItem]] = {
    "message": MessageItem,
    "function_call": FunctionCallItem,
    "reasoning": ReasoningItem,
}


def to_store(upstream: dict[str, Any], shell: ResponseObject) -> ResponseObject:
    """The response gatehouse stores (and chains on) for an upstream's Response: the
    request's ``shell`` with the upstream's status, usage and output items. Items
    are kept with the fields gatehouse's item models know (message, function_call,
    reasoning with its ``encrypted_content``); other item types (hosted tools'
    calls) are not stored, as they cannot be sent back as input."""
    output: list[OutputItem] = []
    for item in upstream.get("output") or []:
        model = _ITEM_MODELS.get(str(item.get("type")))
        if model is None:
            continue
        known = {key: value for key, value in item.items() if key in model.model_fields}
        if model is MessageItem:
            known["content"] = [_part(part) for part in item.get("content") or []]
        output.append(model.model_validate(known))
    status, usage = upstream.get("status"), upstream.get("usage")
    update: dict[str, Any] = {
        "status": status if status in {"completed", "incomplete", "failed"} else "completed",
        "output": output,
        "usage": response_usage(usage_of(usage)) if isinstance(usage, dict) else None,
    }
    incomplete = upstream.get("incomplete_details")
    if isinstance(incomplete, dict) and incomplete.get("reason") in {
        "max_output_tokens",
        "content_filter",
    }:
        update["incomplete_details"] = IncompleteDetails.model_validate(
            {"reason": incomplete["reason"]}
        )
    error = upstream.get("error")
    if isinstance(error, dict):
        update["error"] = ResponseError(
            code=str(error.get("code") or "server_error"), message=str(error.get("message") or "")
        )
    return shell.model_copy(update=update)


def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "output_text":
        return {"type": "output_text", "text": part.get("text", "")}
    if part.get("type") == "refusal":
        return {"type": "refusal", "refusal": part.get("refusal", "")}
    return part


@dataclass(slots=True)
class NativeCall:
    """One ``/v1/responses`` request's native form, and what its upstream answered."""

    body: dict[str, Any]
    request: ChatCompletionRequest  # the chat translation the pipeline runs
    response: dict[str, Any] | None = None  # the upstream's Response, once answered
    completion: ChatCompletion | None = None  # what the pipeline was given for it
    streaming: bool = False  # a native stream is open (its events below)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Where the request holds what only a native upstream can take (an upstream's
    # own reasoning state): a chat deployment is refused it, by name.
    native_only: list[str] = field(default_factory=list)

    def applies(self, current: object, provider: object) -> bool:
        """Call natively: the provider speaks Responses and no stage changed the request
        (a stage's unchanged copy, such as a guard's that found nothing, is no change)."""
        if not isinstance(provider, ResponsesProvider):
            return False
        return current is self.request or current == self.request

    def check_chat(self) -> None:
        """Before a deployment is sent the chat translation: refuse what it would lose."""
        if self.native_only:
            raise UnsupportedParameterError(
                "Reasoning that gatehouse did not produce cannot be sent to this model "
                "(only to a deployment with api: responses that gave it).",
                param=self.native_only[0],
            )

    def answered(self, result: ChatCompletion) -> dict[str, Any] | None:
        """The upstream's Response, if ``result`` is what it said (no stage changed it)."""
        completion = self.completion
        if self.response is None or completion is None:
            return None
        return self.response if result is completion or result == completion else None

    async def complete(self, provider: ResponsesProvider) -> ChatCompletion:
        response = await provider.respond(self.body)
        completion = _completion(response)
        self.response, self.completion = response, completion
        return completion

    async def stream(self, provider: ResponsesProvider) -> AsyncIterator[ChatCompletionChunk]:
        """The upstream's events as chat chunks; the events themselves are kept in
        ``events`` for the route, which drains them as the chunks pass."""
        self.events.clear()
        self.streaming = True
        calls = 0
        try:
            async for event in provider.stream_respond(self.body):
                self.events.append(event)
                kind = event.get("type")
                if kind == "response.output_text.delta":
                    yield _chunk(Delta(content=str(event.get("delta") or "")))
                elif kind == "response.output_item.done":
                    item = event.get("item") or {}
                    if item.get("type") == "function_call":
                        call = _tool_call(item, calls)
                        calls += 1
                        yield _chunk(Delta(tool_calls=[call]))
                elif kind in TERMINAL:
                    response = event.get("response")
                    if kind in {"error", "response.failed"} or not isinstance(response, dict):
                        raise UpstreamError(f"The upstream's Responses stream ended with {kind}")
                    self.response = response
                    finish = "tool_calls" if calls else _finish_reason(response)
                    usage = usage_of(response.get("usage"))
                    yield _chunk(Delta(), finish=finish, usage=usage)
                    return
            raise UpstreamError("The upstream's Responses stream ended before it finished")
        except BaseException:
            if self.response is None:
                self.streaming = False
            raise


def _completion(response: dict[str, Any]) -> ChatCompletion:
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in response.get("output") or []:
        if item.get("type") == "message":
            text += [part.get("text", "") for part in item.get("content") or []]
        elif item.get("type") == "function_call":
            calls.append(_tool_call(item, len(calls)))
    message = AssistantMessage(content="".join(text) or None, tool_calls=calls or None)
    finish = "tool_calls" if calls else _finish_reason(response)
    return ChatCompletion(
        id=str(response.get("id") or ""),
        created=int(response.get("created_at") or 0),
        model=str(response.get("model") or ""),
        choices=[Choice(message=message, finish_reason=finish)],
        usage=usage_of(response.get("usage")),
    )


def _tool_call(item: dict[str, Any], index: int) -> dict[str, Any]:
    return {
        "index": index,
        "id": str(item.get("call_id") or ""),
        "type": "function",
        "function": {"name": str(item.get("name") or ""), "arguments": item.get("arguments", "")},
    }


def _finish_reason(response: dict[str, Any]) -> str:
    if response.get("status") != "incomplete":
        return "stop"
    reason = (response.get("incomplete_details") or {}).get("reason")
    return "content_filter" if reason == "content_filter" else "length"


def _chunk(
    delta: Delta, *, finish: str | None = None, usage: Usage | None = None
) -> ChatCompletionChunk:
    return ChatCompletionChunk(
        id="native",
        created=0,
        model="",
        choices=[ChunkChoice(delta=delta, finish_reason=finish)],
        usage=usage,
    )
