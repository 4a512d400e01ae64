"""Wire and canonical types.

gatehouse speaks the OpenAI chat and embeddings formats and uses them as its
canonical request/response types too: every provider adapter translates from
and to these. Request models accept unknown fields (``extra="allow"``) so that
provider-specific parameters pass through to upstreams that understand them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

# Request complexity limits (docs/security.md): what one request may ask for,
# beside the body's size (server.max_body_bytes). Tools, n and embedding inputs
# at OpenAI's own limits; a tool's JSON size so that one schema cannot make every
# call's prompt (and its token count) enormous.
MAX_MESSAGES = 4096
MAX_TOOLS = 128
MAX_TOOL_BYTES = 64 * 1024
MAX_CHOICES = 128
MAX_EMBEDDING_INPUTS = 2048

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
# What gatehouse's own providers produce; upstream values pass through as strings.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="allow")


class TextPart(_Wire):
    type: Literal["text"]
    text: str


class ImageURL(_Wire):
    url: str
    detail: str | None = None


class ImagePart(_Wire):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(_Wire):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    # Reasoning state of an assistant turn, sent back on the next turn (see
    # docs/translation.md): the thinking text, and the signed blocks
    # (``{"type": "thinking", "thinking", "signature"}`` or
    # ``{"type": "redacted_thinking", "data"}``) that providers verify.
    reasoning_content: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text, with the text parts of a multi-part content joined."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))

    def has_images(self) -> bool:
        return isinstance(self.content, list) and any(
            isinstance(part, ImagePart) for part in self.content
        )


class StreamOptions(_Wire):
    include_usage: bool = False


class CacheOptions(BaseModel):
    """The per-request ``cache`` body field: gatehouse reads it, upstreams never see it."""

    model_config = ConfigDict(extra="forbid")

    ttl: float | None = Field(default=None, gt=0, le=30 * 86400)
    namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$")
    bypass: bool = False


@dataclass(frozen=True, slots=True)
class RetrievedText:
    """A retrieved passage quoted verbatim in a request's messages, and its id there."""

    id: str
    text: str


class ChatCompletionRequest(_Wire):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(default=1, ge=1, le=MAX_CHOICES)
    user: str | None = None
    tools: list[dict[str, Any]] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    # ``none`` .. ``xhigh``; each adapter maps it to its provider's setting.
    reasoning_effort: str | None = None
    # Anthropic's ``{"type": "enabled", "budget_tokens": N}``, kept exact for the
    # adapters that take a budget (Anthropic, Gemini); others get ``reasoning_effort``.
    thinking: dict[str, Any] | None = None
    logprobs: bool | None = None
    # The upstream enforces its own maximum (OpenAI's is 20).
    top_logprobs: int | None = Field(default=None, ge=0)
    # Gateway control, not a model parameter: excluded from every dump so no
    # provider forwards it upstream.
    cache: CacheOptions | None = Field(default=None, exclude=True)
    # Retrieved passages this request's messages quote (RAG answers): set in
    # process only (never from the wire, never dumped), so the guard can treat
    # them as data (guard.injection.retrieved).
    _retrieved: tuple[RetrievedText, ...] = PrivateAttr(default=())

    @property
    def retrieved(self) -> tuple[RetrievedText, ...]:
        return self._retrieved

    def with_retrieved(self, passages: tuple[RetrievedText, ...]) -> ChatCompletionRequest:
        """This request, noting that its messages quote ``passages`` verbatim."""
        copy = self.model_copy()
        copy._retrieved = passages
        return copy

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return value

    @field_validator("tools")
    @classmethod
    def _tools_of_bounded_size(
        cls, value: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        for tool in value or ():
            if len(orjson.dumps(tool)) > MAX_TOOL_BYTES:
                raise ValueError(f"a tool's definition may take at most {MAX_TOOL_BYTES} bytes")
        return value

    def stop_sequences(self) -> list[str]:
        if self.stop is None:
            return []
        stops = [self.stop] if isinstance(self.stop, str) else self.stop
        return [s for s in stops if s]

    def token_limit(self) -> int | None:
        """The completion token limit: ``max_completion_tokens`` wins over ``max_tokens``."""
        return self.max_completion_tokens or self.max_tokens

    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class _OmitNone(BaseModel):
    """Leaves out the listed fields while they are ``None``, as OpenAI's wire format does."""

    _omit_when_none: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        omit = self._omit_when_none
        return {k: v for k, v in data.items() if v is not None or k not in omit}


class PromptTokensDetails(_OmitNone):
    """What ``prompt_tokens`` include: tokens read from and written to the provider's
    prompt cache (the convention is :mod:`gatehouse.core.usage`'s)."""

    model_config = ConfigDict(extra="allow")
    _omit_when_none = frozenset({"cached_tokens", "cache_write_tokens"})

    cached_tokens: int | None = None
    cache_write_tokens: int | None = None


class CompletionTokensDetails(_OmitNone):
    """What ``completion_tokens`` include: the model's reasoning."""

    model_config = ConfigDict(extra="allow")
    _omit_when_none = frozenset({"reasoning_tokens"})

    reasoning_tokens: int | None = None


class Usage(_OmitNone):
    """Token usage in OpenAI's shape: ``prompt_tokens`` include cached and
    cache-written tokens, ``completion_tokens`` include reasoning tokens. Every
    provider's usage is brought to this convention (see :mod:`gatehouse.core.usage`)."""

    model_config = ConfigDict(extra="allow")
    _omit_when_none = frozenset({"prompt_tokens_details", "completion_tokens_details"})

    prompt_tokens: int
    completion_tokens: int = 0
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None


class AssistantMessage(_OmitNone):
    model_config = ConfigDict(extra="allow")
    _omit_when_none = frozenset({"tool_calls", "reasoning_content", "thinking_blocks"})

    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None


class TopLogprob(_Wire):
    """One of the most likely tokens at a position, with its log probability."""

    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(TopLogprob):
    """A generated token with its log probability and the runners-up (``top_logprobs``)."""

    top_logprobs: list[TopLogprob] = Field(default_factory=list)


class ChoiceLogprobs(_Wire):
    """A choice's ``logprobs``: one entry per token of the content (or of the refusal).

    Parsed from every upstream answer that carries them, so it stays a plain
    tree of small models; unknown fields (and older servers' shapes) pass through.
    """

    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class Choice(_Wire):
    index: int = 0
    message: AssistantMessage
    finish_reason: str | None
    logprobs: ChoiceLogprobs | None = None


def stop_fields(stop_sequence: str | None) -> dict[str, str]:
    """A choice's extra ``stop_reason`` field naming the stop sequence that ended
    it, as vLLM's OpenAI server sends it; none when it ended otherwise (an
    end-of-turn token, a length limit), so other answers keep OpenAI's shape."""
    return {} if stop_sequence is None else {"stop_reason": stop_sequence}


def stop_sequence_of(choice: Choice | ChunkChoice) -> str | None:
    """The stop sequence that ended ``choice`` (its ``stop_reason`` extra, when a
    string: vLLM sends a token id there when a stop token ended it)."""
    value = (choice.model_extra or {}).get("stop_reason")
    return value if isinstance(value, str) else None


class ChatCompletion(_Wire):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


class Delta(_OmitNone):
    model_config = ConfigDict(extra="allow")
    _omit_when_none = frozenset(
        {"role", "content", "tool_calls", "reasoning_content", "thinking_blocks"}
    )

    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    # Streamed thinking text; a signed block arrives whole, once its signature is known.
    reasoning_content: str | None = None
    thinking_blocks: list[dict[str, Any]] | None = None


class ChunkChoice(_Wire):
    index: int = 0
    delta: Delta
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None


class ChatCompletionChunk(_Wire):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None
    system_fingerprint: str | None = None


class EmbeddingRequest(_Wire):
    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _bounded_inputs(
        cls, value: str | list[str] | list[int] | list[list[int]]
    ) -> str | list[str] | list[int] | list[list[int]]:
        # A list of token ids is one input; a list of strings or of id lists, many.
        many = isinstance(value, list) and value and isinstance(value[0], (str, list))
        if many and len(value) > MAX_EMBEDDING_INPUTS:
            raise ValueError(f"at most {MAX_EMBEDDING_INPUTS} inputs are allowed")
        return value

    def texts(self) -> list[str]:
        """The inputs as strings; token-id inputs are not text and are refused upstream."""
        if isinstance(self.input, str):
            return [self.input]
        return [item for item in self.input if isinstance(item, str)]

    def is_token_input(self) -> bool:
        return isinstance(self.input, list) and any(
            not isinstance(item, str) for item in self.input
        )


class Embedding(_Wire):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingResponse(_Wire):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
