"""Chain of thought: step-by-step prompts, and the final answer read apart from the reasoning.

A :class:`ChainOfThought` asks the model to work through named steps and to
end with a line ``Final answer: ...``. :func:`extract_answer` finds that
answer in whatever came back: the marker in any case, bolded or as a
heading, the last one if there are several, text after a ``</think>``
block; without any marker, the last non-empty paragraph is taken as the
answer and the result says so (``marker_found`` is false).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.prompts._flow import Flow, ask, text_of

MARKER = "Final answer:"

# "Final answer:", "**Final Answer**:", "## Final answer", "Answer:", "The answer is",
# "Therefore, the final answer is" at the start of a line.
_MARKERS = re.compile(
    r"^[ \t>*#_-]*(?:(?:so|thus|therefore|hence),?\s+)?(?:the\s+)?(?:final\s+)?answer"
    r"[ \t*_]*(?:(?:is\b|[:\-\u2014])[ \t*_]*|$)",
    re.IGNORECASE | re.MULTILINE,
)
_THINK = re.compile(r"<think>(.*?)</think>", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Reasoned:
    """A model's reply split into its reasoning and its final answer."""

    reasoning: str
    answer: str
    marker_found: bool
    raw: str = ""
    tokens: int = 0


def extract_answer(text: str) -> Reasoned:
    """Split ``text`` into reasoning and final answer (see the module docstring)."""
    raw = text
    thought = ""
    think = _THINK.search(text)
    if think:
        thought = think.group(1).strip()
        text = (text[: think.start()] + text[think.end() :]).strip()
    found = None
    for match in _MARKERS.finditer(text):
        rest = text[match.end() :].strip()
        if rest:
            found = match
    if found is not None:
        reasoning = "\n\n".join(p for p in (thought, text[: found.start()].strip()) if p)
        answer = text[found.end() :].strip().strip("*_").strip()
        return Reasoned(reasoning, answer, True, raw)
    if think and text:  # everything after the thinking block is the answer
        return Reasoned(thought, text, False, raw)
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not paragraphs:
        return Reasoned(thought, "", False, raw)
    if len(paragraphs) == 1:
        lines = [line for line in paragraphs[0].splitlines() if line.strip()]
        if len(lines) > 1:
            return Reasoned("\n".join(lines[:-1]), lines[-1].strip(), False, raw)
        return Reasoned(thought, paragraphs[0], False, raw)
    return Reasoned("\n\n".join(paragraphs[:-1]), paragraphs[-1], False, raw)


@dataclass(frozen=True)
class ChainOfThought:
    """A step-by-step prompt: what the model is, the steps it works through."""

    name: str
    role: str
    steps: tuple[str, ...]
    model: str = "default"
    temperature: float = 0.0
    max_tokens: int | None = 512

    @classmethod
    def custom(
        cls, steps: Sequence[str], *, role: str = "You solve tasks carefully.", **fields: object
    ) -> ChainOfThought:
        """A chain of thought through your own ``steps``."""
        if not steps:
            raise ValueError("a chain of thought needs at least one step")
        return cls("custom", role, tuple(steps), **fields)  # type: ignore[arg-type]

    def messages(self, task: str, context: str | None = None) -> list[ChatMessage]:
        numbered = "\n".join(f"{i}. {step}" for i, step in enumerate(self.steps, 1))
        system = (
            f"{self.role}\nThink step by step. Work through these steps in order, "
            f"writing your reasoning for each:\n{numbered}\n"
            f"Then write one last line that starts with '{MARKER}' followed by the answer alone."
        )
        user = task if context is None else f"{task}\n\nContext:\n{context}"
        return [ChatMessage(role="system", content=system), ChatMessage(role="user", content=user)]

    def request(self, task: str, context: str | None = None) -> ChatCompletionRequest:
        return ChatCompletionRequest(
            model=self.model,
            messages=self.messages(task, context),
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )

    def flow(self, task: str, context: str | None = None) -> Flow[Reasoned]:
        completion = yield from ask(self.request(task, context))
        found = extract_answer(text_of(completion))
        return Reasoned(
            found.reasoning,
            found.answer,
            found.marker_found,
            found.raw,
            completion.usage.total_tokens,
        )


PROBLEM_SOLVING = ChainOfThought(
    "problem_solving",
    "You are a careful problem solver.",
    (
        "Restate the problem and what is asked.",
        "List the facts and constraints given.",
        "Plan an approach.",
        "Carry out the plan, showing each step.",
        "Check the result against the constraints.",
    ),
)
DEBUGGING = ChainOfThought(
    "debugging",
    "You are an experienced software engineer debugging a problem.",
    (
        "Describe the observed behaviour and the expected behaviour.",
        "List the hypotheses that could explain the difference.",
        "For each hypothesis, say what evidence supports or rules it out.",
        "Name the most likely root cause.",
        "Propose a fix and how to verify it.",
    ),
)
DATA_ANALYSIS = ChainOfThought(
    "data_analysis",
    "You are a careful data analyst.",
    (
        "Describe the data: its fields, units and size.",
        "State the question as something the data can answer.",
        "Compute or read off the relevant figures, showing the arithmetic.",
        "Note caveats: missing values, outliers, small samples.",
        "State the conclusion the figures support.",
    ),
)
