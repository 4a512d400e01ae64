"""A native Responses stream relayed to the client as the pipeline lets it through.

The upstream's events (``NativeCall.events``) keep their structure, ids,
reasoning items and usage; what the model wrote (output text, function-call
arguments) is taken from the chunks that come out of the pipeline, so a stage
that changes the answer (a guard's output policy: held-back text, redactions,
a cut) changes what the client gets. With no such stage the two agree and the
client gets the upstream's events as they come, renumbered.

Events about what was written (a text part's or a call's ``.done``, an item's
``output_item.done``, the closing ``response.*``) wait until the pipeline has
given that text or call, or has ended; everything after a waiting event waits
behind it, so the order is the upstream's.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from gatehouse.core.types import ChatCompletionChunk
from gatehouse.faces.responses_items import ResponseObject
from gatehouse.faces.responses_native import TERMINAL, NativeCall, event_for_client, for_client
from gatehouse.faces.responses_stream import event

Target = tuple[str, int]  # a text part: its item id and content index
_TEXT_DONE = frozenset({"response.output_text.done", "response.content_part.done"})
_CALL_EVENTS = frozenset(
    {"response.function_call_arguments.delta", "response.function_call_arguments.done"}
)


class NativeRelay:
    """Feed each chunk out of the pipeline (:meth:`feed`), then :meth:`close`."""

    def __init__(self, native: NativeCall, shell: ResponseObject) -> None:
        self._native = native
        self._shell = shell
        self._sequence = 0
        self._target: tuple[str, int, int] | None = None  # item id, output index, content index
        self._written: dict[Target, str] = {}  # what the pipeline gave, per text part
        self._upstream: dict[Target, str] = {}  # what the upstream wrote, per text part
        self._arguments: dict[str, str] = {}  # call_id -> the pipeline's arguments
        self._call_ids: dict[str, str] = {}  # function_call item id -> its call_id
        self._held: deque[dict[str, Any]] = deque()
        self._streamed: dict[str, str] = {}  # function_call item id -> upstream arguments
        self._replaced: set[str] = set()  # items whose changed arguments were sent
        self._finish: str | None = None

    def feed(self, chunk: ChatCompletionChunk) -> list[bytes]:
        self._drain()
        out = self._release(ended=False)  # what comes before this text
        for choice in chunk.choices[:1]:
            if choice.delta.content:
                out.extend(self._text(choice.delta.content))
            for call in choice.delta.tool_calls or []:
                function = call.get("function") or {}
                self._arguments[str(call.get("id") or "")] = str(function.get("arguments") or "")
            if choice.finish_reason:
                self._finish = choice.finish_reason
        out.extend(self._release(ended=False))
        return out

    def close(self) -> tuple[list[bytes], dict[str, Any]]:
        """The last events, and the final Response (the client's view, for storing)."""
        self._drain()
        out = self._release(ended=True)
        upstream = self._native.response
        if upstream is None or self._finish == "content_filter":
            # The pipeline cut the answer: it ends incomplete, with what was let through.
            final = self._cut(upstream)
            out.append(self._emit({"type": "response.incomplete", "response": final}))
            return out, final
        return out, self.final(upstream)

    def final(self, upstream: dict[str, Any]) -> dict[str, Any]:
        """``upstream``'s Response with the pipeline's text and arguments, as the client's."""
        output = [item for item in map(self._item, upstream.get("output") or []) if item]
        return for_client({**upstream, "output": output}, self._shell)

    # -- the pieces ----------------------------------------------------------------

    def _drain(self) -> None:
        """Take the upstream's new events: text deltas are replaced by the pipeline's
        text; the rest are held (see :meth:`_release`)."""
        for upstream in self._native.events:
            kind = upstream.get("type")
            if kind == "response.output_text.delta":
                target = (str(upstream.get("item_id")), int(upstream.get("content_index") or 0))
                self._target = (*target[:1], int(upstream.get("output_index") or 0), target[1])
                self._upstream[target] = self._upstream.get(target, "") + str(
                    upstream.get("delta") or ""
                )
                continue
            if kind == "response.function_call_arguments.delta":
                item_id = str(upstream.get("item_id"))
                self._streamed[item_id] = self._streamed.get(item_id, "") + str(
                    upstream.get("delta") or ""
                )
            if kind == "response.output_item.added":
                item = upstream.get("item") or {}
                if item.get("type") == "function_call":
                    self._call_ids[str(item.get("id"))] = str(item.get("call_id"))
            self._held.append(upstream)
        self._native.events.clear()

    def _text(self, text: str) -> list[bytes]:
        if self._target is None:  # pragma: no cover - text only comes from a delta event
            return []
        item_id, output_index, content_index = self._target
        key = (item_id, content_index)
        self._written[key] = self._written.get(key, "") + text
        delta = {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": output_index,
            "content_index": content_index,
            "delta": text,
            "logprobs": [],
        }
        return [self._emit(delta)]

    def _release(self, *, ended: bool) -> list[bytes]:
        out: list[bytes] = []
        while self._held:
            upstream = self._held[0]
            if not ended and not self._ready(upstream):
                break
            self._held.popleft()
            if upstream.get("type") in TERMINAL:
                if self._native.response is not None and self._finish != "content_filter":
                    out.append(
                        self._emit({**upstream, "response": self.final(upstream["response"])})
                    )
                continue  # a cut answer ends as close() says
            rewritten = self._rewrite(upstream)
            if rewritten is not None:
                out.append(self._emit(rewritten))
        return out

    def _ready(self, upstream: dict[str, Any]) -> bool:
        kind = upstream.get("type")
        if kind in TERMINAL:
            return False
        if kind in _TEXT_DONE:
            key = (str(upstream.get("item_id")), int(upstream.get("content_index") or 0))
            return self._written.get(key, "") == self._upstream.get(key, "")
        if kind in _CALL_EVENTS:
            return self._call_ids.get(str(upstream.get("item_id")), "") in self._arguments
        if kind == "response.output_item.done":
            item = upstream.get("item") or {}
            if item.get("type") == "function_call":
                return str(item.get("call_id")) in self._arguments
            if item.get("type") == "message":
                return all(
                    self._written.get(key, "") == text
                    for key, text in self._upstream.items()
                    if key[0] == item.get("id")
                )
        return True

    def _rewrite(self, upstream: dict[str, Any]) -> dict[str, Any] | None:
        """An upstream event with the pipeline's text or arguments; ``None``: drop it
        (a call the pipeline cut, or argument deltas that the pipeline changed)."""
        kind = upstream.get("type")
        key = (str(upstream.get("item_id")), int(upstream.get("content_index") or 0))
        if kind == "response.output_text.done":
            return {**upstream, "text": self._written.get(key, "")}
        if kind == "response.content_part.done":
            part = upstream.get("part") or {}
            if part.get("type") == "output_text":
                part = {**part, "text": self._written.get(key, "")}
            return {**upstream, "part": part}
        if kind in _CALL_EVENTS:
            item_id = str(upstream.get("item_id"))
            arguments = self._arguments.get(self._call_ids.get(item_id, ""))
            if arguments is None:
                return None
            if kind == "response.function_call_arguments.done":
                return {**upstream, "arguments": arguments}
            if self._streamed_arguments(item_id) == arguments:
                return upstream
            # The pipeline changed the arguments: they go whole, as the first delta.
            if item_id in self._replaced:
                return None
            self._replaced.add(item_id)
            return {**upstream, "delta": arguments}
        if kind == "response.output_item.done":
            item = self._item(upstream.get("item") or {})
            return None if item is None else {**upstream, "item": item}
        return upstream

    def _streamed_arguments(self, item_id: str) -> str:
        return self._streamed.get(item_id, "")

    def _item(self, item: dict[str, Any]) -> dict[str, Any] | None:
        if item.get("type") == "message":
            content = []
            for index, part in enumerate(item.get("content") or []):
                if part.get("type") == "output_text":
                    part = {**part, "text": self._written.get((str(item.get("id")), index), "")}
                content.append(part)
            return {**item, "content": content}
        if item.get("type") == "function_call":
            arguments = self._arguments.get(str(item.get("call_id")))
            return None if arguments is None else {**item, "arguments": arguments}
        return item

    def _cut(self, upstream: dict[str, Any] | None) -> dict[str, Any]:
        if upstream is None:  # the upstream was stopped: the output is what was let through
            output = [
                {
                    "type": "message",
                    "id": item_id,
                    "role": "assistant",
                    "status": "incomplete",
                    "content": [{"type": "output_text", "text": text, "annotations": []}],
                }
                for (item_id, _), text in self._written.items()
            ]
            upstream = {**self._shell.model_dump(mode="json"), "output": output}
        final = self.final(upstream)
        return {
            **final,
            "status": "incomplete",
            "incomplete_details": {"reason": "content_filter"},
        }

    def fail(self, error: dict[str, Any], failed: dict[str, Any]) -> list[bytes]:
        """The events for a failure mid-stream: ``error``, then ``response.failed``."""
        return [
            self._emit({"type": "error", **error}),
            self._emit({"type": "response.failed", "response": failed}),
        ]

    def _emit(self, data: dict[str, Any]) -> bytes:
        data = event_for_client({**data, "sequence_number": self._sequence}, self._shell)
        self._sequence += 1
        return event(data)
