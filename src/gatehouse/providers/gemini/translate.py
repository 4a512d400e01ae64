"""OpenAI-shaped requests to Gemini's generateContent and back. Pure, no I/O."""

from __future__ import annotations

from typing import Any

import orjson

from gatehouse.core.errors import ContentPolicyError, UnsupportedParameterError, UpstreamError
from gatehouse.core.types import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatMessage,
    Choice,
    ChunkChoice,
    Delta,
    ImagePart,
    TextPart,
    Usage,
)
from gatehouse.providers.wire import add_turn, json_object, split_data_url

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


def request_to_wire(request: ChatCompletionRequest) -> dict[str, Any]:
    """The generateContent body (the model goes in the URL)."""
    body: dict[str, Any] = {"contents": _contents(request.messages)}
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
    return body


def _declaration(function: dict[str, Any]) -> dict[str, Any]:
    out = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("parameters"):
        out["parameters"] = function["parameters"]
    return out


def _tool_choice(choice: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        return {"mode": "ANY", "allowedFunctionNames": [name]} if name else {"mode": "AUTO"}
    return {"mode": {"required": "ANY", "none": "NONE"}.get(choice, "AUTO")}


def _contents(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for function responses
    for message in messages:
        if message.role in {"system", "developer"}:
            continue
        parts: list[dict[str, Any]]
        if message.role == "assistant":
            role = "model"
            parts = [{"text": message.text()}] if message.text() else []
            for call in message.tool_calls or []:
                function = call.get("function", {})
                names[call.get("id", "")] = function.get("name", "")
                parts.append(
                    {
                        "functionCall": {
                            "name": function.get("name", ""),
                            "args": json_object(function.get("arguments") or "{}"),
                        }
                    }
                )
        elif message.role in {"tool", "function"}:
            role = "user"
            name = names.get(message.tool_call_id or "", message.name or "")
            parts = [{"functionResponse": {"name": name, "response": {"content": message.text()}}}]
        else:
            role = "user"
            parts = _parts(message)
        add_turn(out, role, "parts", parts)
    return out


def _parts(message: ChatMessage) -> list[dict[str, Any]]:
    if message.content is None or isinstance(message.content, str):
        return [{"text": message.content or ""}]
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            inline = split_data_url(part.image_url.url)
            if inline is not None:
                parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
            else:
                parts.append({"fileData": {"fileUri": part.image_url.url}})
    return parts


def usage_from_wire(meta: dict[str, Any]) -> Usage:
    prompt = int(meta.get("promptTokenCount") or 0)
    completion = int(meta.get("candidatesTokenCount") or 0) + int(
        meta.get("thoughtsTokenCount") or 0
    )
    return Usage.model_validate(
        {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {
                "cached_tokens": int(meta.get("cachedContentTokenCount") or 0)
            },
        }
    )


def _candidate_parts(candidate: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    text, calls = "", list[dict[str, Any]]()
    for part in (candidate.get("content") or {}).get("parts") or []:
        if "text" in part and not part.get("thought"):
            text += part["text"]
        elif "functionCall" in part:
            call = part["functionCall"]
            calls.append(
                {
                    "id": call.get("id") or f"call_{len(calls)}",
                    "type": "function",
                    "function": {
                        "name": call.get("name", ""),
                        "arguments": orjson.dumps(call.get("args") or {}).decode(),
                    },
                }
            )
    return text, calls


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
    for index, candidate in zip(_indices(candidates), candidates, strict=True):
        text, calls = _candidate_parts(candidate)
        choices.append(
            Choice(
                index=index,
                message=AssistantMessage(content=text or None, tool_calls=calls or None),
                finish_reason=_finish(candidate, bool(calls)) or "stop",
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
            text, calls = _candidate_parts(candidate)
            if text:
                out.append(self._chunk(index, Delta(content=text)))
            if calls:
                first = self._calls[index]
                indexed = [{"index": first + n, **call} for n, call in enumerate(calls)]
                self._calls[index] += len(calls)
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
