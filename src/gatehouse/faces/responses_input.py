"""The ``input`` of a Responses request as typed items, and stored input page by page.

A string is one user message; a list holds message items (``input_text``,
``output_text``, ``refusal`` and ``input_image`` parts), ``function_call``,
``function_call_output`` and ``reasoning`` items. Anything else is refused with a 400 naming
the item or part (``input[2].content[0].type``), never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from gatehouse.core.errors import UnsupportedParameterError, ValidationFailedError
from gatehouse.faces.responses_items import (
    FunctionCallItem,
    FunctionCallOutputItem,
    IdFactory,
    InputImage,
    InputItemList,
    InputText,
    Item,
    MessageItem,
    OutputText,
    Refusal,
    ResponseObject,
    new_item_id,
)
from gatehouse.faces.responses_reasoning import input_item as reasoning_input


def unsupported(param: str, what: str, hint: str = "") -> UnsupportedParameterError:
    """The 400 for a field gatehouse cannot translate, naming it."""
    return UnsupportedParameterError(f"{what} is not supported by gatehouse{hint}.", param=param)


def invalid(param: str, message: str) -> ValidationFailedError:
    """The 400 for a malformed field, naming it."""
    return ValidationFailedError(f"Invalid value for '{param}': {message}", param=param)


def input_items(
    value: str | list[dict[str, Any]],
    ids: IdFactory = new_item_id,
    *,
    foreign_reasoning: bool = False,
) -> list[Item]:
    """A request's ``input`` as typed items, each with an id (assigned when missing);
    ``foreign_reasoning`` accepts reasoning state an upstream gave (for native calls)."""
    if isinstance(value, str):
        if not value:
            return []
        return [MessageItem(id=ids("msg"), role="user", content=[InputText(text=value)])]
    return [
        _item(raw, f"input[{index}]", ids, foreign_reasoning) for index, raw in enumerate(value)
    ]


def _item(raw: dict[str, Any], where: str, ids: IdFactory, foreign_reasoning: bool) -> Item:
    kind = raw.get("type", "message")  # an "easy" message has no type
    if kind == "message":
        return _message_item(raw, where, ids)
    if kind == "function_call":
        arguments = raw.get("arguments") or "{}"
        if not isinstance(arguments, str):
            raise invalid(f"{where}.arguments", "expected a JSON string.")
        namespace = raw.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise invalid(f"{where}.namespace", "expected a string.")
        return FunctionCallItem(
            id=_given_id(raw) or ids("fc"),
            call_id=_required(raw, "call_id", where),
            name=_required(raw, "name", where),
            arguments=arguments,
            namespace=namespace or None,
        )
    if kind == "reasoning":
        return reasoning_input(raw, where, ids, foreign_ok=foreign_reasoning)
    if kind == "function_call_output":
        return FunctionCallOutputItem(
            id=_given_id(raw) or ids("fco"),
            call_id=_required(raw, "call_id", where),
            output=_tool_output(raw.get("output"), f"{where}.output"),
        )
    raise unsupported(f"{where}.type", f"Input item type {kind!r}")


def _required(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise invalid(f"{where}.{key}", "expected a non-empty string.")
    return value


def _given_id(raw: dict[str, Any]) -> str | None:
    value = raw.get("id")
    return value if isinstance(value, str) and value else None


def _message_item(raw: dict[str, Any], where: str, ids: IdFactory) -> MessageItem:
    role = raw.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise invalid(f"{where}.role", "expected 'user', 'assistant', 'system' or 'developer'.")
    content = raw.get("content")
    parts: list[InputText | OutputText | Refusal | InputImage]
    if isinstance(content, str):
        parts = [OutputText(text=content) if role == "assistant" else InputText(text=content)]
    elif isinstance(content, list):
        parts = [_part(p, f"{where}.content[{i}]", role) for i, p in enumerate(content)]
    else:
        raise invalid(f"{where}.content", "expected a string or a list of content parts.")
    return MessageItem(
        id=_given_id(raw) or ids("msg"),
        role=role,
        content=parts,
    )


_TEXT_PART_FIELDS = frozenset({"type", "text", "annotations", "logprobs"})


def _part(raw: Any, where: str, role: str) -> InputText | OutputText | Refusal | InputImage:
    if not isinstance(raw, dict):
        raise invalid(where, "expected a content part object.")
    kind = raw.get("type")
    if kind in ("input_text", "output_text", "text"):
        text = raw.get("text")
        if not isinstance(text, str):
            raise invalid(f"{where}.text", "expected a string.")
        # Never a silent drop: a field the chat translation cannot carry (an
        # Anthropic cache_control breakpoint, say) is refused, naming it.
        # annotations and logprobs come back on replayed output_text, and are
        # the model's own output, not instructions to it.
        extra = sorted(set(raw) - _TEXT_PART_FIELDS)
        if extra:
            raise unsupported(f"{where}.{extra[0]}", f"The text part field {extra[0]!r}")
        return OutputText(text=text) if role == "assistant" else InputText(text=text)
    if kind == "refusal" and role == "assistant":
        return Refusal(refusal=str(raw.get("refusal", "")))
    if kind == "input_image" and role != "assistant":
        if raw.get("file_id"):
            raise unsupported(f"{where}.file_id", "An image given by file_id (the Files API)")
        url = raw.get("image_url")
        if not isinstance(url, str) or not url:
            raise invalid(f"{where}.image_url", "expected a URL or a data URL.")
        detail = raw.get("detail") or "auto"
        if detail not in ("low", "high", "auto"):
            raise invalid(f"{where}.detail", "expected 'low', 'high' or 'auto'.")
        return InputImage(image_url=url, detail=detail)
    raise unsupported(f"{where}.type", f"Content part type {kind!r} in a {role} message")


def _tool_output(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for index, part in enumerate(output):
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
                raise unsupported(f"{where}[{index}]", "A function output part other than text")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise invalid(where, "expected a string or a list of input_text parts.")


def output_as_input(response: ResponseObject) -> list[Item]:
    """A stored response's output, as the input items of the turn that follows it."""
    return list(response.output)


def input_item_page(
    items: Sequence[Item],
    *,
    after: str | None = None,
    limit: int = 20,
    order: Literal["asc", "desc"] = "desc",
) -> InputItemList:
    """One page of a response's input items, as ``GET .../input_items`` lists them.

    ``order`` ``desc`` (the default, as OpenAI's) lists the newest item first;
    ``after`` is the id of the last item of the previous page.
    """
    ordered = list(items) if order == "asc" else list(reversed(items))
    start = 0
    if after is not None:
        positions = [i for i, item in enumerate(ordered) if item.id == after]
        if not positions:
            raise invalid("after", f"no input item {after!r} in this response.")
        start = positions[0] + 1
    page = ordered[start : start + limit]
    return InputItemList(
        data=page,
        first_id=page[0].id if page else None,
        last_id=page[-1].id if page else None,
        has_more=start + limit < len(ordered),
    )
