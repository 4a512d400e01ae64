"""Turning pydantic validation failures into the errors clients see."""

from __future__ import annotations

import re

from pydantic import ValidationError

from gatehouse.core.errors import ValidationFailedError

_UNION_BRANCH = re.compile(r"str|int|float|bool|none|[a-z-]+\[.*\]")


def validation_error(exc: ValidationError) -> ValidationFailedError:
    """The first validation problem, with ``param`` in OpenAI's ``messages[0].role`` form."""
    first = exc.errors(include_url=False)[0]
    param = _param_path(first["loc"])
    if first["type"] == "missing":
        message = f"Missing required parameter: '{param}'."
    else:
        message = f"Invalid value for '{param}': {first['msg']}."
    return ValidationFailedError(message, param=param or None)


def _param_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif not path:
            path = part
        elif _UNION_BRANCH.fullmatch(part):
            # pydantic names union branches by type ("str", "list[...]"): not a field
            continue
        else:
            path += f".{part}"
    return path
