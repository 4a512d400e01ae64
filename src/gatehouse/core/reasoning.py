"""How much a model may think: OpenAI's ``reasoning_effort`` and Anthropic's budgets.

OpenAI clients say ``reasoning_effort`` (``none`` .. ``xhigh``); Anthropic
clients say ``thinking: {"type": "enabled", "budget_tokens": N}``; Gemini 2.5
takes a ``thinkingBudget`` and Gemini 3 a ``thinkingLevel``. The tables here
are the one place these meet (documented in docs/translation.md); each adapter
reads the setting its provider takes.
"""

from __future__ import annotations

from typing import Any, Final

from gatehouse.core.errors import ValidationFailedError

EFFORTS: Final = ("none", "minimal", "low", "medium", "high", "xhigh")

# reasoning_effort -> Anthropic budget_tokens (1024 is Anthropic's minimum) and
# Gemini 2.5 thinkingBudget. ``none`` turns thinking off.
EFFORT_BUDGETS: Final[dict[str, int]] = {
    "none": 0,
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
}

# A budget back to the effort an OpenAI-shaped upstream takes: the largest
# effort whose budget the given one reaches.
_BUDGET_EFFORTS: Final = (
    (24576, "high"),
    (8192, "medium"),
    (2048, "low"),
    (1, "minimal"),
)


def check_effort(effort: str, param: str = "reasoning_effort") -> str:
    """``effort`` if it is one of :data:`EFFORTS`, else a 400 naming ``param``."""
    if effort not in EFFORTS:
        raise ValidationFailedError(
            f"Invalid value for '{param}': expected one of {', '.join(EFFORTS)}.", param=param
        )
    return effort


def thinking_budget(thinking: dict[str, Any] | None, param: str = "thinking") -> int | None:
    """The token budget of an Anthropic ``thinking`` setting: ``None`` when absent,
    0 when disabled, else its ``budget_tokens`` (a 400 naming ``param`` when malformed)."""
    if thinking is None:
        return None
    kind = thinking.get("type")
    if kind == "disabled":
        return 0
    if kind == "adaptive":
        return EFFORT_BUDGETS["medium"]
    budget = thinking.get("budget_tokens")
    if kind != "enabled" or not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise ValidationFailedError(
            f"Invalid value for '{param}': expected {{'type': 'enabled', 'budget_tokens': N}}"
            " or {'type': 'disabled'}.",
            param=param,
        )
    return budget


def effort_for_budget(budget: int) -> str:
    """The ``reasoning_effort`` an OpenAI-shaped upstream gets for a thinking budget."""
    if budget <= 0:
        return "none"
    for floor, effort in _BUDGET_EFFORTS:
        if budget >= floor:
            return effort
    return "minimal"  # pragma: no cover - the last floor is 1
