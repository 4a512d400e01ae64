"""Structured output: a pydantic model or a JSON schema in, a validated object out.

Two ways to get there, chosen per call:

- ``response_format``: the request carries ``{"type": "json_schema", ...}``.
  Deployments that honour it return schema-shaped JSON; the local model
  enforces it with a grammar at every token (``providers/local/grammar.py``).
- ``prompt``: the schema is written into the system prompt, and the answer is
  parsed (code fences and chatter around the JSON are tolerated), validated,
  and on failure sent back to the model with the validation errors to repair.

``mode="auto"`` (the default) asks with ``response_format`` and falls back to
``prompt`` when the deployment refuses it (a 400 about ``response_format`` or
an unsupported parameter). In both ways the answer is validated, and a
failure is repaired, up to ``max_attempts`` calls in all (a repair samples at
``repair_temperature``: greedy decoding would give the same answer again); then
:class:`StructuredOutputError` carries every validation error and the last
raw answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, cast

from pydantic import BaseModel, ValidationError

from gatehouse.client._protocol import Messages, messages_of
from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.prompts._flow import Flow, ask, text_of

T = TypeVar("T")
Mode = Literal["auto", "response_format", "prompt"]
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
_NAME = re.compile(r"[^A-Za-z0-9_-]")


class StructuredOutputError(ValueError):
    """The model gave no valid object within the allowed attempts."""

    def __init__(self, errors: list[str], raw: str, attempts: int) -> None:
        super().__init__(
            f"no valid object after {attempts} attempt(s): {errors[-1] if errors else ''}"
        )
        self.errors = errors
        self.raw = raw
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class Structured(Generic[T]):
    """The validated object, the text it came from, and how it was obtained."""

    value: T
    raw: str
    attempts: int
    mode: Literal["response_format", "prompt"]
    tokens: int


def extract_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, a fenced block, or the first object
    or array found in it. Raises ``ValueError`` naming what went wrong."""
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    decoder = json.JSONDecoder()
    for start, char in enumerate(text):
        if char in "{[":
            try:
                value, _ = decoder.raw_decode(text, start)
            except ValueError:
                continue
            return value
    if not text.strip():
        raise ValueError("the answer is empty")
    raise ValueError("the answer contains no JSON object")


class StructuredOutput(Generic[T]):
    """Ask for an instance of ``schema`` (a pydantic model class, or a JSON schema dict)."""

    def __init__(
        self,
        schema: type[T] | Mapping[str, Any],
        *,
        name: str | None = None,
        model: str = "default",
        mode: Mode = "auto",
        max_attempts: int = 3,
        temperature: float = 0.0,
        repair_temperature: float = 0.7,
        max_tokens: int = 512,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.model_class: type[BaseModel] | None = None
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            self.model_class = schema
            self.schema: dict[str, Any] = schema.model_json_schema()
            default_name = schema.__name__
        elif isinstance(schema, Mapping):
            self.schema = dict(schema)
            from jsonschema import Draft202012Validator

            Draft202012Validator.check_schema(self.schema)  # a broken schema fails here, once
            self._validator = Draft202012Validator(self.schema)
            default_name = str(self.schema.get("title") or "answer")
        else:
            raise TypeError("schema must be a pydantic model class or a JSON schema dict")
        self.name = _NAME.sub("_", name or default_name)[:64]
        self.model = model
        self.mode = mode
        self.max_attempts = max_attempts
        self.temperature = temperature
        self.repair_temperature = repair_temperature
        self.max_tokens = max_tokens

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {"name": self.name, "schema": self.schema, "strict": True},
        }

    def instructions(self) -> str:
        return (
            "Answer with one JSON value that follows this JSON schema, and nothing else "
            f"(no prose, no code fence):\n{json.dumps(self.schema, separators=(',', ':'))}"
        )

    def messages(self, prompt: Messages) -> list[ChatMessage]:
        return [ChatMessage(role="system", content=self.instructions()), *messages_of(prompt)]

    def validate(self, text: str) -> T:
        """The object in ``text``, validated; ``ValueError`` lists what is wrong."""
        data = extract_json(text)
        if self.model_class is not None:
            try:
                return cast(T, self.model_class.model_validate(data))
            except ValidationError as exc:
                problems = [
                    f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}"
                    for e in exc.errors()
                ]
                raise ValueError("; ".join(problems)) from None
        errors = sorted(self._validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            raise ValueError(
                "; ".join(
                    f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
                    for e in errors[:10]
                )
            )
        return cast(T, data)

    def flow(self, prompt: Messages) -> Flow[Structured[T]]:
        from gatehouse.client import APIStatusError

        messages = self.messages(prompt)
        use_format = self.mode != "prompt"
        errors: list[str] = []
        raw = ""
        tokens = 0
        attempt = 0
        while attempt < self.max_attempts:
            attempt += 1
            request = ChatCompletionRequest(
                model=self.model,
                messages=messages,
                # Greedy decoding under the same grammar would repeat the invalid
                # answer word for word: a repair samples.
                temperature=self.temperature if not errors else self.repair_temperature,
                max_tokens=self.max_tokens,
                response_format=self.response_format() if use_format else None,
            )
            try:
                completion = yield from ask(request)
            except APIStatusError as exc:
                if not (use_format and self.mode == "auto" and _refuses_format(exc)):
                    raise
                use_format = False  # this deployment cannot: ask through the prompt instead
                attempt -= 1
                continue
            tokens += completion.usage.total_tokens
            raw = text_of(completion)
            try:
                value = self.validate(raw)
            except ValueError as exc:
                errors.append(str(exc))
                messages = [
                    *messages,
                    ChatMessage(role="assistant", content=raw),
                    ChatMessage(
                        role="user",
                        content=f"That answer is not valid: {exc}. Reply with the corrected "
                        "JSON only.",
                    ),
                ]
                continue
            mode: Literal["response_format", "prompt"] = (
                "response_format" if use_format else "prompt"
            )
            return Structured(value, raw, attempt, mode, tokens)
        raise StructuredOutputError(errors, raw, attempt)


def _refuses_format(exc: Exception) -> bool:
    status = getattr(exc, "status", None)
    param = getattr(exc, "param", None)
    code = getattr(exc, "code", None)
    return status == 400 and (param == "response_format" or code == "unsupported_parameter")
