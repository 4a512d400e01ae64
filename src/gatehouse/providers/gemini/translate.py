"""OpenAI-shaped requests to Gemini's generateContent and back. Pure, no I/O."""

from __future__ import annotations

from typing import Any

from gatehouse.core.errors import ContentPolicyError, UnsupportedParameterError, UpstreamError
from gatehouse.core.reasoning import (
    EFFORT_BUDGETS,
    check_effort,
    effort_for_budget,
    thinking_budget,
)
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
from gatehouse.providers.gemini import contents
from gatehouse.providers.gemini.calls import canonical_call
from gatehouse.providers.wire import GEMINI_SIGNATURE_PREFIX

FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


def request_to_wire(request: ChatCompletionRequest, model: str = "") -> dict[str, Any]:
    """The generateContent body (the model goes in the URL). ``model`` is the upstream
    model: Gemini 3 takes a thinking level where 2.5 takes a budget."""
    generation3 = _generation3(model)
    body: dict[str, Any] = {
        "contents": contents.contents(request.messages, needs_signatures=generation3)
    }
    system = [m.text() for m in request.messages if m.role in {"system", "developer"}]
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.token_limit():
        config["maxOutputTokens"] = request.token_limit()
    if request.stop_sequences():
        config["stopSequences"] = request.stop_sequences()
    if request.n != 1:
        config["candidateCount"] = request.n
    if request.seed is not None:
        config["seed"] = request.seed
    top_k = (request.model_extra or {}).get("top_k")
    if top_k is not None:
        config["topK"] = top_k
    thinking = _thinking_config(request, generation3)
    if thinking:
        config["thinkingConfig"] = thinking
    fmt = request.response_format or {}
    if fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        config["responseJsonSchema"] = (fmt.get("json_schema") or {}).get("schema", {})
    elif fmt and fmt.get("type") != "text":
        raise UnsupportedParameterError(
            f"response_format type {fmt.get('type')!r} is not supported", param="response_format"
        )
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    _declaration(tool.get("function", tool)) for tool in request.tools
                ]
            }
        ]
        if request.tool_choice is not None:
            body["toolConfig"] = {"functionCallingConfig": _tool_choice(request.tool_choice)}
        if (request.model_extra or {}).get("parallel_tool_calls") is False:
            raise UnsupportedParameterError(
                "Gemini cannot be told to make one function call at a time",
                param="parallel_tool_calls",
            )
    return body


def _generation3(model: str) -> bool:
    return model.removeprefix("models/").startswith("gemini-3")


# reasoning_effort -> Gemini 3 thinkingLevel (docs/translation.md).
THINKING_LEVELS = {
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}


def _thinking_config(request: ChatCompletionRequest, generation3: bool) -> dict[str, Any]:
    """Anthropic's exact budget, else ``reasoning_effort`` by the table: a budget for
    Gemini 2.5, a level for Gemini 3 (which cannot stop thinking)."""
    budget = thinking_budget(request.thinking)
    effort = request.reasoning_effort
    if budget is None and effort is None:
        return {}
    adaptive = (request.thinking or {}).get("type") == "adaptive"
    if effort is None or (request.thinking is not None and not adaptive):
        param = "thinking"
        effort = effort_for_budget(budget or 0)
    else:
        param = "reasoning_effort"
        budget = EFFORT_BUDGETS[check_effort(effort)]
    if not generation3:
        return (
            {"thinkingBudget": budget, "includeThoughts": True} if budget else {"thinkingBudget": 0}
        )
    if effort == "none":
        raise UnsupportedParameterError(
            "Gemini 3 models always think; the least they take is 'minimal'", param=param
        )
    return {"thinkingLevel": THINKING_LEVELS[effort], "includeThoughts": True}


def _declaration(function: dict[str, Any]) -> dict[str, Any]:
    out = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        # The whole JSON Schema ($defs, anyOf, additionalProperties, ...), which
        # ``parameters`` (an OpenAPI subset) would refuse or lose.
        out["parametersJsonSchema"] = function["parameters"]
    return out


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if choice.get("type") != "function" or not isinstance(name, str) or not name:
            raise UnsupportedParameterError(
                f"tool_choice of type {choice.get('type')!r} cannot be sent to Gemini",
                param="tool_choice",
            )
        return {"mode": "ANY", "allowedFunctionNames": [name]}
    modes = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
    if choice not in modes:
        raise UnsupportedParameterError(
            f"tool_choice {choice!r} is not one of auto, none, required", param="tool_choice"
        )
    return {"mode": modes[choice]}


def usage_from_wire(meta: dict[str, Any]) -> Usage:
    """Canonical usage from Gemini's ``usageMetadata``: ``promptTokenCount`` includes
    ``cachedContentTokenCount``; tool-use prompt tokens and thoughts are counted
    on top of the prompt and the candidates."""
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return billed_usage(
        input=int(meta.get("promptTokenCount") or 0)
        + int(meta.get("toolUsePromptTokenCount") or 0),
        cache_read=int(meta.get("cachedContentTokenCount") or 0),
        output=int(meta.get("candidatesTokenCount") or 0) + thoughts,
        reasoning=thoughts,
    )


class _Parts:
    """What one candidate (or one streamed piece of it) says, in canonical pieces."""

    def __init__(
        self, candidate: dict[str, Any], response_id: str, index: int, first_call: int = 0
    ) -> None:
        self.text = ""
        self.reasoning = ""
        self.calls: list[dict[str, Any]] = []
        self.signatures: list[dict[str, Any]] = []
        for part in (candidate.get("content") or {}).get("parts") or []:
            if "functionCall" in part:
                position = first_call + len(self.calls)
                self.calls.append(canonical_call(part, response_id, index, position))
                continue
            if part.get("thought"):
                self.reasoning += str(part.get("text") or "")
            elif "text" in part:
                self.text += part["text"]
            signature = part.get("thoughtSignature")
            if isinstance(signature, str) and signature:
                self.signatures.append(
                    {
                        "type": "thinking",
                        "thinking": "",
                        "signature": GEMINI_SIGNATURE_PREFIX + signature,
                    }
                )


def _finish(candidate: dict[str, Any], has_calls: bool) -> str | None:
    reason = candidate.get("finishReason")
    if reason is None:
        return None
    if has_calls and reason == "STOP":
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


def _check_blocked(data: dict[str, Any]) -> None:
    feedback = data.get("promptFeedback") or {}
    if not data.get("candidates") and feedback.get("blockReason"):
        raise ContentPolicyError(
            f"Gemini blocked the prompt ({feedback['blockReason']})", param="messages"
        )


def response_from_wire(data: dict[str, Any], model: str, created: int) -> ChatCompletion:
    _check_blocked(data)
    candidates = data.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        raise UpstreamError("Gemini answered without candidates")
    choices = []
    response_id = data.get("responseId") or ""
    for index, candidate in zip(_indices(candidates), candidates, strict=True):
        parts = _Parts(candidate, response_id, index)
        message = AssistantMessage(
            content=parts.text or None,
            tool_calls=parts.calls or None,
            reasoning_content=parts.reasoning or None,
            thinking_blocks=parts.signatures or None,
        )
        choices.append(
            Choice(
                index=index,
                message=message,
                finish_reason=_finish(candidate, bool(parts.calls)) or "stop",
            )
        )
    return ChatCompletion(
        id=data.get("responseId") or "gemini",
        created=created,
        model=data.get("modelVersion") or model,
        choices=choices,
        usage=usage_from_wire(data.get("usageMetadata") or {}),
    )


def _indices(candidates: list[dict[str, Any]]) -> list[int]:
    """Each candidate's own index. Gemini's JSON leaves out an index of 0 (a
    proto3 default), and a stream event may carry only some candidates, so the
    position in the list counts only where no candidate names its index."""
    if any("index" in candidate for candidate in candidates):
        return [_int(candidate.get("index")) for candidate in candidates]
    return list(range(len(candidates)))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


class StreamTranslator:
    """streamGenerateContent responses in, chat-completion chunks out.

    With ``candidateCount`` above 1 each event carries some of the candidates,
    each with its own ``index``: every chunk names its candidate's choice, and
    each choice numbers its own tool calls and finishes on its own.
    """

    def __init__(self, model: str, created: int) -> None:
        self._model = model
        self._created = created
        self._id = "gemini"
        self._usage: dict[str, Any] = {}
        self._calls: dict[int, int] = {}  # choice index (every one started) -> tool calls so far
        self._open: set[int] = set()  # choices started and not yet finished

    @property
    def finished(self) -> bool:
        """Every choice that started has finished."""
        return bool(self._calls) and not self._open

    def feed(self, data: dict[str, Any]) -> list[ChatCompletionChunk]:
        _check_blocked(data)
        self._id = data.get("responseId") or self._id
        self._usage = data.get("usageMetadata") or self._usage
        out: list[ChatCompletionChunk] = []
        candidates = data.get("candidates") or []
        for index, candidate in zip(_indices(candidates), candidates, strict=True):
            if index not in self._calls:
                self._calls[index] = 0
                self._open.add(index)
                out.append(self._chunk(index, Delta(role="assistant", content="")))
            first = self._calls[index]
            parts = _Parts(candidate, data.get("responseId") or "", index, first)
            if parts.reasoning:
                out.append(self._chunk(index, Delta(reasoning_content=parts.reasoning)))
            if parts.text:
                out.append(self._chunk(index, Delta(content=parts.text)))
            if parts.signatures:
                out.append(self._chunk(index, Delta(thinking_blocks=parts.signatures)))
            if parts.calls:
                indexed = [{"index": first + n, **call} for n, call in enumerate(parts.calls)]
                self._calls[index] += len(parts.calls)
                out.append(self._chunk(index, Delta(tool_calls=indexed)))
            finish = _finish(candidate, self._calls[index] > 0)
            if finish and index in self._open:
                self._open.discard(index)
                out.append(self._chunk(index, Delta(), finish))
        return out

    def close(self) -> list[ChatCompletionChunk]:
        """The usage chunk, once the stream has ended."""
        return [
            ChatCompletionChunk(
                id=self._id,
                created=self._created,
                model=self._model,
                choices=[],
                usage=usage_from_wire(self._usage),
            )
        ]

    def _chunk(self, index: int, delta: Delta, finish: str | None = None) -> ChatCompletionChunk:
        return ChatCompletionChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=[ChunkChoice(index=index, delta=delta, finish_reason=finish)],
        )
