"""The OpenAI Responses API as an inbound dialect. Pure translation, no I/O.

gatehouse serves ``POST /v1/responses`` by translating it to a chat
completion, which runs through the same pipeline as ``/v1/chat/completions``
(limits, budgets, guard, ledger) on any model group, and translating the
answer (or each streamed chunk, see :mod:`gatehouse.faces.responses_stream`)
back into a ``response`` object and its events.

The translation is strict: a field that has no chat-completion meaning
(built-in tools, file inputs, background mode, ...) is refused with a 400 that
names it, never dropped. What the two APIs share:

=========================================  ==========================================
Responses                                  Chat completions
=========================================  ==========================================
``instructions``                           a leading ``system`` message
``input`` (a string, or items)             ``messages``
message item, ``input_text``/``output_text``  a message with text parts
``input_image`` (a URL or a data URL)      an ``image_url`` part
``function_call`` item                     an assistant message's ``tool_calls``
``function_call_output`` item              a ``tool`` message
``reasoning`` item (summary,               the assistant turn's ``reasoning_content``
``encrypted_content``)                     and ``thinking_blocks``
function ``tools``, ``tool_choice``        ``tools``, ``tool_choice``
``max_output_tokens``                      ``max_completion_tokens``
``text.format`` json_schema / json_object  ``response_format``
``text.verbosity``                         ``verbosity``
``reasoning.effort``                       ``reasoning_effort``
``user`` / ``safety_identifier``           ``user``
=========================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatehouse.core.types import ChatCompletion, ChatCompletionRequest, Usage
from gatehouse.core.usage import TokenCounts
from gatehouse.core.validation import validation_error
from gatehouse.faces.responses_input import invalid, unsupported
from gatehouse.faces.responses_items import (
    FunctionCallItem,
    IdFactory,
    IncompleteDetails,
    InputImage,
    InputText,
    InputTokensDetails,
    Item,
    MessageItem,
    OutputItem,
    OutputText,
    OutputTokensDetails,
    ReasoningItem,
    Refusal,
    ResponseObject,
    ResponseStatus,
    ResponseUsage,
    namespaced,
    new_item_id,
)
from gatehouse.faces.responses_reasoning import foreign as foreign_state
from gatehouse.faces.responses_reasoning import join_turn
from gatehouse.faces.responses_reasoning import output_item as reasoning_output
from gatehouse.faces.responses_tools import chat_tool_choice, chat_tools

# ``include`` values that need nothing from a chat-translated upstream: every
# reasoning item carries its ``encrypted_content`` whether asked or not.
_VACUOUS_INCLUDES = frozenset({"reasoning.encrypted_content"})


class ResponsesRequest(BaseModel):
    """The body of ``POST /v1/responses``. Unknown fields are refused, by name."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    store: bool | None = None
    previous_response_id: str | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    service_tier: str | None = None
    include: list[str] | None = None
    truncation: Literal["disabled", "auto"] | None = None
    # What the client says about itself (Codex sends it): no meaning for the model.
    client_metadata: dict[str, Any] | None = None
    # Accepted only while unset (or at their neutral value): each is refused by name.
    background: bool | None = None
    top_logprobs: int | None = None
    max_tool_calls: int | None = None
    conversation: str | dict[str, Any] | None = None
    prompt: dict[str, Any] | None = None

    @property
    def stores(self) -> bool:
        """``store`` defaults to true, as OpenAI's does."""
        return self.store is not False

    @property
    def streams(self) -> bool:
        return self.stream is True


def check_supported(request: ResponsesRequest) -> None:
    """Refuse, by name, every field that a chat completion cannot carry."""
    if request.background:
        raise unsupported("background", "Background mode")
    if request.top_logprobs:
        raise unsupported("top_logprobs", "top_logprobs on the Responses API")
    if request.max_tool_calls is not None:
        raise unsupported("max_tool_calls", "max_tool_calls")
    if request.conversation is not None:
        raise unsupported("conversation", "The Conversations API")
    if request.prompt is not None:
        raise unsupported("prompt", "Stored prompt templates")
    if request.truncation == "auto":
        raise unsupported("truncation", "truncation='auto'")
    for index, value in enumerate(request.include or []):
        if value not in _VACUOUS_INCLUDES:
            raise unsupported(f"include[{index}]", f"include value {value!r}")


# -- items -> chat request --------------------------------------------------------


def to_openai(
    request: ResponsesRequest, items: Sequence[Item], *, foreign: list[str] | None = None
) -> ChatCompletionRequest:
    """The chat-completion request for ``request``, whose whole context is ``items``
    (a previous response's context and output, then this request's input).

    Reasoning state that gatehouse did not encode (a native upstream's) is refused,
    unless ``foreign`` is given: then it is left out (its summary kept) and the
    item's place is added to ``foreign``, for the caller to refuse the request to
    any upstream but a native one."""
    check_supported(request)
    messages: list[dict[str, Any]] = []
    if request.instructions:
        messages.append({"role": "system", "content": request.instructions})
    messages.extend(_messages(items, foreign))
    if not messages:
        raise invalid("input", "a response needs at least one input item or instructions.")
    body: dict[str, Any] = {"model": request.model, "messages": messages}
    if request.streams:
        # The closing response.completed event carries usage, so always ask for it.
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if request.max_output_tokens is not None:
        body["max_completion_tokens"] = request.max_output_tokens
    for field in ("temperature", "top_p", "parallel_tool_calls", "service_tier"):
        value = getattr(request, field)
        if value is not None:
            body[field] = value
    if request.prompt_cache_key is not None:
        body["prompt_cache_key"] = request.prompt_cache_key
    user = request.user or request.safety_identifier
    if user:
        body["user"] = user
    if request.tools:
        body["tools"] = chat_tools(request.tools)
    if request.tool_choice is not None:
        body["tool_choice"] = chat_tool_choice(request.tool_choice)
    body.update(_text(request.text))
    effort = _reasoning_effort(request.reasoning)
    if effort is not None:
        body["reasoning_effort"] = effort
    try:
        return ChatCompletionRequest.model_validate(body)
    except ValidationError as exc:
        # The translation can break the chat request's own limits (more than
        # MAX_TOOLS tools, no message left): the client's 400, not a 500.
        raise validation_error(exc) from None


def _messages(items: Sequence[Item], foreign: list[str] | None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if isinstance(item, MessageItem):
            chat = _chat_message(item)
            last = messages[-1] if messages else None
            if chat["role"] == "assistant" and _reasoning_only(last):
                assert last is not None
                last["content"] = chat["content"]  # the text after its reasoning: one turn
            else:
                messages.append(chat)
        elif isinstance(item, ReasoningItem):
            state = item.encrypted_content
            if foreign is not None and state is not None and foreign_state(state):
                foreign.append(f"input[{index}].encrypted_content")
                item = item.model_copy(update={"encrypted_content": None})
            join_turn(messages, item, "input")
        elif isinstance(item, FunctionCallItem):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.chat_name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            # Parallel calls (and the text before them) are one assistant turn in chat.
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": item.output})
    return messages


def _reasoning_only(message: dict[str, Any] | None) -> bool:
    """An assistant turn that so far holds only reasoning."""
    return (
        message is not None
        and message["role"] == "assistant"
        and message.get("content") is None
        and not message.get("tool_calls")
    )


def _chat_message(item: MessageItem) -> dict[str, Any]:
    role = "system" if item.role == "developer" else item.role
    if item.role == "assistant" or not any(isinstance(p, InputImage) for p in item.content):
        return {"role": role, "content": item.text()}
    parts: list[dict[str, Any]] = []
    for part in item.content:
        if isinstance(part, InputImage):
            image = {"url": part.image_url, "detail": part.detail}
            parts.append({"type": "image_url", "image_url": image})
        elif isinstance(part, InputText | OutputText):
            parts.append({"type": "text", "text": part.text})
    return {"role": role, "content": parts}


def _text(text: dict[str, Any] | None) -> dict[str, Any]:
    if not text:
        return {}
    out: dict[str, Any] = {}
    unknown = set(text) - {"format", "verbosity"}
    if unknown:
        raise unsupported(f"text.{sorted(unknown)[0]}", "This text option")
    if text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    spec = text.get("format") or {"type": "text"}
    kind = spec.get("type")
    if kind == "text":
        return out
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
        return out
    if kind != "json_schema":
        raise unsupported("text.format.type", f"text.format of type {kind!r}")
    if not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), dict):
        raise invalid("text.format", "json_schema needs a 'name' and a 'schema' object.")
    schema = {k: spec[k] for k in ("name", "schema", "description", "strict") if k in spec}
    out["response_format"] = {"type": "json_schema", "json_schema": schema}
    return out


def _reasoning_effort(reasoning: dict[str, Any] | None) -> str | None:
    if not reasoning:
        return None
    unknown = set(reasoning) - {"effort", "summary", "generate_summary"}
    if unknown:
        raise unsupported(f"reasoning.{sorted(unknown)[0]}", "This reasoning option")
    effort = reasoning.get("effort")
    if effort is not None and effort not in ("none", "minimal", "low", "medium", "high", "xhigh"):
        raise invalid("reasoning.effort", f"unknown effort {effort!r}.")
    return effort if isinstance(effort, str) else None


# -- chat answer -> response ------------------------------------------------------


def shell(
    request: ResponsesRequest,
    *,
    response_id: str,
    created_at: int,
    status: ResponseStatus = "in_progress",
) -> ResponseObject:
    """The response object before its output: the request's settings echoed back."""
    reasoning = {"effort": None, "summary": None}
    if request.reasoning:
        reasoning["effort"] = request.reasoning.get("effort")
        reasoning["summary"] = request.reasoning.get("summary")
    text: dict[str, Any] = {"format": {"type": "text"}}
    if request.text:
        text = {**request.text, "format": request.text.get("format") or {"type": "text"}}
    return ResponseObject(
        id=response_id,
        created_at=created_at,
        status=status,
        instructions=request.instructions,
        max_output_tokens=request.max_output_tokens,
        model=request.model,
        parallel_tool_calls=request.parallel_tool_calls is not False,
        previous_response_id=request.previous_response_id,
        reasoning=reasoning,
        service_tier=request.service_tier,
        store=request.stores,
        temperature=request.temperature,
        text=text,
        tool_choice=request.tool_choice or "auto",
        tools=list(request.tools or []),
        top_p=request.top_p,
        user=request.user,
        metadata=dict(request.metadata or {}),
    )


def finish(
    response: ResponseObject, finish_reason: str | None, usage: Usage | None
) -> ResponseObject:
    """``response`` with its final status (from the chat finish reason) and usage."""
    incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}
    reason = incomplete.get(finish_reason or "")
    update: dict[str, Any] = {"status": "completed", "usage": response_usage(usage)}
    if reason is not None:
        update["status"] = "incomplete"
        update["incomplete_details"] = IncompleteDetails.model_validate({"reason": reason})
    return response.model_copy(update=update)


def response_usage(usage: Usage | None) -> ResponseUsage | None:
    """Chat usage in the Responses shape; cache reads, cache writes and reasoning kept."""
    if usage is None:
        return None
    tokens = TokenCounts.of(usage)
    return ResponseUsage(
        input_tokens=usage.prompt_tokens,
        input_tokens_details=InputTokensDetails(
            cached_tokens=tokens.cached, cache_write_tokens=tokens.cache_write
        ),
        output_tokens=usage.completion_tokens,
        output_tokens_details=OutputTokensDetails(reasoning_tokens=tokens.reasoning),
        total_tokens=usage.total_tokens,
    )


def from_openai(
    completion: ChatCompletion, shell: ResponseObject, ids: IdFactory = new_item_id
) -> ResponseObject:
    """The finished response for a chat completion, on the ``shell`` of its request."""
    choice = completion.choices[0]
    message = choice.message
    output: list[OutputItem] = []
    reasoning = reasoning_output(message, ids)
    if reasoning is not None:
        output.append(reasoning)
    refusal = getattr(message, "refusal", None)
    if message.content or refusal or not message.tool_calls:
        content: list[InputText | OutputText | Refusal | InputImage] = []
        if message.content or not refusal:
            content.append(OutputText(text=message.content or ""))
        if isinstance(refusal, str) and refusal:
            content.append(Refusal(refusal=refusal))
        output.append(MessageItem(id=ids("msg"), role="assistant", content=content))
    seen: set[str] = set()
    names = namespaced(shell.tools)
    for call in message.tool_calls or []:
        function = call.get("function") or {}
        call_id = str(call.get("id") or "")
        if not call_id or call_id in seen:  # ids must be unique within a response
            call_id = ids("call")
        seen.add(call_id)
        name = str(function.get("name", ""))
        namespace, name = names.get(name, (None, name))
        output.append(
            FunctionCallItem(
                id=ids("fc"),
                call_id=call_id,
                name=name,
                arguments=str(function.get("arguments") or ""),
                namespace=namespace,
            )
        )
    done = finish(shell, choice.finish_reason, completion.usage)
    return done.model_copy(update={"output": output})
