"""Chat-completion chunks in, Responses API stream events out. Pure, no I/O.

The events follow OpenAI's sequence, each with a ``sequence_number`` counted
from 0: ``response.created``, ``response.in_progress``; per output item
``response.output_item.added``, then for a message ``response.content_part.added``,
``response.output_text.delta``..., ``response.output_text.done``,
``response.content_part.done``, and for a function call
``response.function_call_arguments.delta``..., ``response.function_call_arguments.done``;
then ``response.output_item.done``. Reasoning comes first as a ``reasoning`` item
(``response.reasoning_summary_part.added``, ``response.reasoning_summary_text.delta``...,
their ``.done``), its signed state in the ``encrypted_content`` of its
``response.output_item.done``. Last ``response.completed`` (or
``response.incomplete`` when the answer was cut by ``max_output_tokens``), or
``error`` and ``response.failed`` when the upstream fails mid-stream.

A chat stream may interleave the argument deltas of parallel tool calls (by
their ``index``), so every function-call item stays open until the stream
ends; a message item closes when the first tool call begins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gatehouse.core.errors import GatehouseError
from gatehouse.core.types import ChatCompletionChunk, Usage
from gatehouse.faces.responses import finish
from gatehouse.faces.responses_items import (
    FunctionCallItem,
    IdFactory,
    MessageItem,
    OutputItem,
    OutputText,
    ReasoningItem,
    ResponseError,
    ResponseObject,
    SummaryText,
    namespaced,
    new_item_id,
)
from gatehouse.faces.responses_reasoning import encode_state


def event(data: dict[str, Any]) -> bytes:
    """One server-sent event, named by its ``type`` as the Responses API names them."""
    name: str = data["type"]
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


@dataclass
class _Open:
    """An output item being streamed: where it sits and what it has gathered."""

    index: int
    item_id: str
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class StreamTranslator:
    """Feed chat chunks in order (:meth:`feed`), then :meth:`close` and :meth:`complete`,
    or :meth:`fail` (after :meth:`close` too, when what follows it fails).

    ``shell`` is the response before its output (see
    :func:`gatehouse.faces.responses.shell`); :attr:`response` is the finished
    response once the stream has closed or failed, for storing.
    """

    def __init__(self, shell: ResponseObject, ids: IdFactory = new_item_id) -> None:
        self._shell = shell
        self._ids = ids
        self._names = namespaced(shell.tools)
        self._sequence = 0
        self._started = False
        self._output: list[OutputItem | None] = []  # by output index; None while open
        self._message: _Open | None = None
        self._reasoning: _Open | None = None  # its text is the summary being streamed
        self._calls: dict[int, _Open] = {}  # chat tool-call index -> open item
        self._call_ids: set[str] = set()
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self.response: ResponseObject | None = None

    def feed(self, chunk: ChatCompletionChunk) -> list[bytes]:
        out = self._start()
        if chunk.usage is not None:
            self._usage = chunk.usage
        for choice in chunk.choices[:1]:
            if choice.delta.reasoning_content:
                out.extend(self._reasoning_text(choice.delta.reasoning_content))
            if choice.delta.thinking_blocks:
                streamed = bool(choice.delta.reasoning_content)
                out.extend(self._reasoning_state(choice.delta.thinking_blocks, streamed))
            if choice.delta.content:
                out.extend(self._text(choice.delta.content))
            for call in choice.delta.tool_calls or []:
                out.extend(self._tool_call(call))
            if choice.finish_reason:
                self._finish_reason = choice.finish_reason
        return out

    def close(self) -> list[bytes]:
        """The events that finish the output (each open item done); :attr:`response`
        is then final. :meth:`complete` (or :meth:`fail`) follows."""
        out = self._start()
        if not self._output:  # an empty answer is still one (empty) message
            out.extend(self._text(""))
        out.extend(self._close_items())
        done = finish(self._shell, self._finish_reason, self._usage)
        self.response = done.model_copy(update={"output": self._items()})
        return out

    def complete(self) -> bytes:
        """The last event after :meth:`close`: ``response.completed`` (or ``.incomplete``)."""
        assert self.response is not None, "complete() follows close()"
        status = self.response.status
        kind = "response.completed" if status == "completed" else "response.incomplete"
        return self._emit(kind, response=self._dump(self.response))

    def fail(self, error: GatehouseError) -> list[bytes]:
        """The events for a failure mid-stream: ``error``, then ``response.failed``."""
        out = self._start()
        out.append(
            self._emit("error", code=error.error_code, message=error.message, param=error.param)
        )
        code = "rate_limit_exceeded" if error.http_status == 429 else "server_error"
        self.response = self._shell.model_copy(
            update={
                "status": "failed",
                "error": ResponseError(code=code, message=error.message),
                "output": [item for item in self._output if item is not None],
            }
        )
        out.append(self._emit("response.failed", response=self._dump(self.response)))
        return out

    # -- the pieces ----------------------------------------------------------------

    def _start(self) -> list[bytes]:
        if self._started:
            return []
        self._started = True
        shell = self._dump(self._shell)
        return [
            self._emit("response.created", response=shell),
            self._emit("response.in_progress", response=shell),
        ]

    def _reasoning_text(self, delta: str) -> list[bytes]:
        out: list[bytes] = []
        reasoning = self._reasoning
        if reasoning is None:
            out.extend(self._open_reasoning())
            reasoning = self._reasoning
            assert reasoning is not None
            part = {"type": "summary_text", "text": ""}
            out.append(
                self._emit(
                    "response.reasoning_summary_part.added",
                    item_id=reasoning.item_id,
                    output_index=reasoning.index,
                    summary_index=0,
                    part=part,
                )
            )
        reasoning.text.append(delta)
        out.append(
            self._emit(
                "response.reasoning_summary_text.delta",
                item_id=reasoning.item_id,
                output_index=reasoning.index,
                summary_index=0,
                delta=delta,
            )
        )
        return out

    def _reasoning_state(self, blocks: list[dict[str, Any]], streamed: bool) -> list[bytes]:
        """A signed (or redacted) block ends the reasoning item it belongs to, one of
        its own when none is open; it holds the text streamed before it when it
        repeats none. A block without a signature is a piece of one (as LiteLLM
        streams them): its text, unless the same delta's ``reasoning_content``
        (``streamed``) carried it already."""
        out: list[bytes] = []
        for block in blocks:
            if not block.get("signature") and block.get("type") != "redacted_thinking":
                if block.get("thinking") and not streamed:
                    out.extend(self._reasoning_text(str(block["thinking"])))
                continue
            if self._reasoning is None:
                out.extend(self._open_reasoning())
            reasoning = self._reasoning
            assert reasoning is not None
            if block.get("type") == "thinking" and not block.get("thinking") and reasoning.text:
                block = {**block, "thinking": "".join(reasoning.text)}
            out.extend(self._close_reasoning([block]))
        return out

    def _open_reasoning(self) -> list[bytes]:
        reasoning = self._reasoning = self._add("rs")
        item = ReasoningItem(id=reasoning.item_id, summary=[], status="in_progress")
        return [
            self._emit(
                "response.output_item.added",
                output_index=reasoning.index,
                item=item.model_dump(exclude_none=True),
            )
        ]

    def _close_reasoning(self, blocks: list[dict[str, Any]] | None = None) -> list[bytes]:
        reasoning = self._reasoning
        if reasoning is None:
            return []
        self._reasoning = None
        text = "".join(reasoning.text)
        summary = [SummaryText(text=text)] if reasoning.text else []
        item = ReasoningItem(
            id=reasoning.item_id,
            summary=summary,
            encrypted_content=encode_state(blocks) if blocks else None,
        )
        self._output[reasoning.index] = item
        where = {"item_id": reasoning.item_id, "output_index": reasoning.index}
        out = []
        if summary:
            part = summary[0].model_dump()
            out += [
                self._emit(
                    "response.reasoning_summary_text.done", **where, summary_index=0, text=text
                ),
                self._emit(
                    "response.reasoning_summary_part.done", **where, summary_index=0, part=part
                ),
            ]
        out.append(
            self._emit(
                "response.output_item.done",
                output_index=reasoning.index,
                item=item.model_dump(exclude_none=True),
            )
        )
        return out

    def _text(self, delta: str) -> list[bytes]:
        out: list[bytes] = self._close_reasoning()
        if self._message is None:
            message = self._message = self._add("msg")
            item = {
                "id": message.item_id,
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
            out.append(
                self._emit("response.output_item.added", output_index=message.index, item=item)
            )
            out.append(
                self._emit(
                    "response.content_part.added",
                    item_id=message.item_id,
                    output_index=message.index,
                    content_index=0,
                    part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                )
            )
        message = self._message
        if delta:
            message.text.append(delta)
            out.append(
                self._emit(
                    "response.output_text.delta",
                    item_id=message.item_id,
                    output_index=message.index,
                    content_index=0,
                    delta=delta,
                    logprobs=[],
                )
            )
        return out

    def _tool_call(self, call: dict[str, Any]) -> list[bytes]:
        out: list[bytes] = []
        index = int(call.get("index", 0))
        function = call.get("function") or {}
        open_call = self._calls.get(index)
        if open_call is None:
            out.extend(self._close_reasoning())
            out.extend(self._close_message())
            open_call = self._calls[index] = self._add("fc")
            call_id = str(call.get("id") or "")
            if not call_id or call_id in self._call_ids:  # unique within the response
                call_id = self._ids("call")
            self._call_ids.add(call_id)
            open_call.call_id = call_id
            open_call.name = str(function.get("name") or "")
            item = self._function_call(open_call, status="in_progress").model_dump()
            out.append(
                self._emit("response.output_item.added", output_index=open_call.index, item=item)
            )
        elif function.get("name") and not open_call.name:
            open_call.name = str(function["name"])
        arguments = function.get("arguments")
        if arguments:
            open_call.text.append(str(arguments))
            out.append(
                self._emit(
                    "response.function_call_arguments.delta",
                    item_id=open_call.item_id,
                    output_index=open_call.index,
                    delta=str(arguments),
                )
            )
        return out

    def _add(self, prefix: str) -> _Open:
        self._output.append(None)
        return _Open(index=len(self._output) - 1, item_id=self._ids(prefix))

    def _close_message(self) -> list[bytes]:
        message = self._message
        if message is None:
            return []
        self._message = None
        text = "".join(message.text)
        part = OutputText(text=text)
        item = MessageItem(id=message.item_id, role="assistant", content=[part])
        self._output[message.index] = item
        where = {"item_id": message.item_id, "output_index": message.index, "content_index": 0}
        return [
            self._emit("response.output_text.done", **where, text=text, logprobs=[]),
            self._emit("response.content_part.done", **where, part=part.model_dump()),
            self._emit(
                "response.output_item.done", output_index=message.index, item=item.model_dump()
            ),
        ]

    def _close_items(self) -> list[bytes]:
        out = self._close_reasoning()
        out.extend(self._close_message())
        for open_call in self._calls.values():
            item = self._function_call(open_call, status="completed")
            self._output[open_call.index] = item
            out.append(
                self._emit(
                    "response.function_call_arguments.done",
                    item_id=open_call.item_id,
                    output_index=open_call.index,
                    name=open_call.name,
                    arguments=item.arguments,
                )
            )
            out.append(
                self._emit(
                    "response.output_item.done",
                    output_index=open_call.index,
                    item=item.model_dump(),
                )
            )
        self._calls.clear()
        return out

    def _function_call(self, open_call: _Open, *, status: str) -> FunctionCallItem:
        namespace, name = self._names.get(open_call.name, (None, open_call.name))
        return FunctionCallItem.model_validate(
            {
                "id": open_call.item_id,
                "call_id": open_call.call_id,
                "name": name,
                "arguments": "".join(open_call.text),
                "status": status,
                "namespace": namespace,
            }
        )

    def _items(self) -> list[OutputItem]:
        return [item for item in self._output if item is not None]

    def _dump(self, response: ResponseObject) -> dict[str, Any]:
        return response.model_dump(mode="json")

    def _emit(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event(data)
