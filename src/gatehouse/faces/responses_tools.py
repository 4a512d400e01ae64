"""Responses API tools and ``tool_choice`` as chat-completion ones. Pure, no I/O.

Function tools map one to one. A ``namespace`` tool (function tools grouped
under a name, as Codex CLI sends them) becomes one chat function per
function, named ``<namespace>__<name>`` (see
:func:`gatehouse.faces.responses_items.chat_name`), its description prefixed
with the namespace's. Every other tool type (the built-in ``web_search``,
``file_search``, ..., ``custom`` tools) is refused with a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from gatehouse.faces.responses_input import invalid, unsupported
from gatehouse.faces.responses_items import chat_name


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function tools as chat functions; a ``namespace`` tool as one per function."""
    out: list[dict[str, Any]] = []
    for index, tool in enumerate(tools):
        where = f"tools[{index}]"
        kind = tool.get("type")
        if kind == "function":
            out.append(_function(tool, where))
        elif kind == "namespace":
            out.extend(_namespace(tool, where))
        else:
            raise unsupported(
                f"{where}.type",
                f"The tool type {kind!r}",
                "; only function and namespace tools are",
            )
    names = [tool["function"]["name"] for tool in out]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise invalid("tools", f"two functions are named {name!r} (namespaces included).")
    return out


def _namespace(tool: dict[str, Any], where: str) -> list[dict[str, Any]]:
    namespace = tool.get("name")
    if not isinstance(namespace, str) or not namespace:
        raise invalid(f"{where}.name", "expected the namespace's name.")
    unknown = set(tool) - {"type", "name", "description", "tools"}
    if unknown:
        raise unsupported(f"{where}.{sorted(unknown)[0]}", "This namespace tool field")
    inner = tool.get("tools")
    if not isinstance(inner, list) or not inner:
        raise invalid(f"{where}.tools", "expected the namespace's function tools.")
    functions = []
    for index, function in enumerate(inner):
        here = f"{where}.tools[{index}]"
        if not isinstance(function, dict) or function.get("type") != "function":
            kind = function.get("type") if isinstance(function, dict) else None
            raise unsupported(f"{here}.type", f"The tool type {kind!r} in a namespace")
        chat = _function(function, here)
        # The namespace's description says what its functions are for: kept in each.
        described = [tool.get("description"), function.get("description")]
        description = " ".join(d for d in described if isinstance(d, str) and d)
        chat["function"]["name"] = chat_name(chat["function"]["name"], namespace)
        if description:
            chat["function"]["description"] = description
        functions.append(chat)
    return functions


def _function(tool: dict[str, Any], where: str) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.name", "expected the function's name.")
    function: dict[str, Any] = {"name": name}
    for key in ("description", "parameters", "strict"):
        if tool.get(key) is not None:
            function[key] = tool[key]
    unknown = set(tool) - {"type", "name", "description", "parameters", "strict"}
    if unknown:
        raise unsupported(f"{where}.{sorted(unknown)[0]}", "This function tool field")
    return {"type": "function", "function": function}


def chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """``auto``, ``none``, ``required`` or one function (of a namespace, too)."""
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise invalid("tool_choice", "expected 'auto', 'none', 'required' or a function.")
        return choice
    if choice.get("type") == "function" and isinstance(choice.get("name"), str):
        namespace = choice.get("namespace")
        name = chat_name(choice["name"], namespace if isinstance(namespace, str) else None)
        return {"type": "function", "function": {"name": name}}
    raise unsupported("tool_choice.type", f"tool_choice of type {choice.get('type')!r}")
