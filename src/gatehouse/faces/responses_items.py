"""The objects of the Responses API that gatehouse reads and writes: items, usage, the response.

Input and output share one item vocabulary: an assistant ``message`` or a
``function_call`` that a response produced is a valid input item of the next
turn, which is how ``previous_response_id`` chains turns. Every item carries
an ``id`` (assigned by gatehouse when the client sent none), so a stored
conversation can be listed and paged (``GET /v1/responses/{id}/input_items``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ItemStatus = Literal["in_progress", "completed", "incomplete"]
ResponseStatus = Literal["completed", "failed", "in_progress", "incomplete"]
IdFactory = Callable[[str], str]


# A function of a ``namespace`` tool is one chat function named ``<namespace>__<name>``
# (chat function names allow letters, digits, ``_`` and ``-`` only).
NAMESPACE_SEPARATOR = "__"


def chat_name(name: str, namespace: str | None) -> str:
    """The chat function name of a (possibly namespaced) Responses function."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


def namespaced(tools: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Chat function name -> (namespace, name), for the functions of ``namespace`` tools."""
    names: dict[str, tuple[str, str]] = {}
    for tool in tools:
        if tool.get("type") == "namespace":
            namespace = str(tool.get("name", ""))
            for inner in tool.get("tools") or []:
                name = str(inner.get("name", ""))
                names[chat_name(name, namespace)] = (namespace, name)
    return names


def new_item_id(prefix: str) -> str:
    """An id in OpenAI's form (``resp_``, ``msg_``, ``fc_``, ``fco_`` then hex)."""
    return f"{prefix}_{secrets.token_hex(24)}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InputText(_Model):
    type: Literal["input_text"] = "input_text"
    text: str


class OutputText(_Model):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    logprobs: list[dict[str, Any]] = Field(default_factory=list)


class Refusal(_Model):
    type: Literal["refusal"] = "refusal"
    refusal: str


class InputImage(_Model):
    type: Literal["input_image"] = "input_image"
    image_url: str
    detail: Literal["low", "high", "auto"] = "auto"


ContentPart = Annotated[InputText | OutputText | Refusal | InputImage, Field(discriminator="type")]


class MessageItem(_Model):
    type: Literal["message"] = "message"
    id: str
    role: Literal["user", "assistant", "system", "developer"]
    status: ItemStatus = "completed"
    content: list[ContentPart]

    def text(self) -> str:
        """The text of the message's text parts (input, output and refusal), joined."""
        pieces = []
        for part in self.content:
            if isinstance(part, InputText | OutputText):
                pieces.append(part.text)
            elif isinstance(part, Refusal):
                pieces.append(part.refusal)
        return "".join(pieces)


class FunctionCallItem(_Model):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus = "completed"
    namespace: str | None = None  # the ``namespace`` tool that holds the function, if any

    @property
    def chat_name(self) -> str:
        return chat_name(self.name, self.namespace)


class FunctionCallOutputItem(_Model):
    type: Literal["function_call_output"] = "function_call_output"
    id: str
    call_id: str
    output: str
    status: ItemStatus = "completed"


class SummaryText(_Model):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningItem(_Model):
    """The reasoning that came with an answer: its text as the summary, and the
    signed reasoning state (thinking blocks, thought signatures) as
    ``encrypted_content``, which goes back upstream on the next turn
    (:mod:`gatehouse.faces.responses_reasoning`)."""

    type: Literal["reasoning"] = "reasoning"
    id: str
    summary: list[SummaryText] = Field(default_factory=list)
    encrypted_content: str | None = None
    status: ItemStatus = "completed"


Item = Annotated[
    MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem,
    Field(discriminator="type"),
]
OutputItem = Annotated[MessageItem | FunctionCallItem | ReasoningItem, Field(discriminator="type")]


class InputTokensDetails(_Model):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(_Model):
    reasoning_tokens: int = 0


class ResponseUsage(_Model):
    input_tokens: int
    input_tokens_details: InputTokensDetails = Field(default_factory=InputTokensDetails)
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(_Model):
    reason: Literal["max_output_tokens", "content_filter"]


class ResponseError(_Model):
    code: str
    message: str


class ResponseObject(_Model):
    """A ``response`` object: what ``POST /v1/responses`` answers and ``GET`` returns."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: ResponseStatus
    background: bool = False
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    model: str
    output: list[OutputItem] = Field(default_factory=list)
    parallel_tool_calls: bool = True
    previous_response_id: str | None = None
    reasoning: dict[str, Any] = Field(default_factory=lambda: {"effort": None, "summary": None})
    service_tier: str | None = None
    store: bool = True
    temperature: float | None = None
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    tool_choice: str | dict[str, Any] = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    top_logprobs: int = 0
    top_p: float | None = None
    truncation: Literal["disabled", "auto"] = "disabled"
    usage: ResponseUsage | None = None
    user: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    completed_at: int | None = None

    def output_text(self) -> str:
        """The text of every output message, joined (the SDK's ``output_text``)."""
        return "".join(item.text() for item in self.output if isinstance(item, MessageItem))


class InputItemList(_Model):
    """One page of ``GET /v1/responses/{id}/input_items``."""

    object: Literal["list"] = "list"
    data: list[Item]
    first_id: str | None
    last_id: str | None
    has_more: bool
