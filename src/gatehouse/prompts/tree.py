"""Tree of thought: propose approaches, let the model score them, expand the best.

At each level every node of the frontier gets ``breadth`` candidate next
thoughts (one call each, so a small model is never asked to produce a
numbered list it might garble), each candidate is scored by the model (one
call each), and the ``keep`` best of the level become the next frontier.
``depth`` levels at most; ``max_calls`` and ``max_tokens`` stop the search
early, and the tree says why it stopped. Scores come from :func:`parse_score`,
which reads what models actually write ("8/10", "Score: 7", "eight out of
ten", "80%") and returns ``None`` for what it cannot read; an unscored
candidate ranks below every scored one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.prompts._flow import Flow, ask, text_of

_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
}  # fmt: skip
_NUMBER = r"(\d+(?:\.\d+)?|" + "|".join(_WORDS) + r")"
_OUT_OF = re.compile(_NUMBER + r"\s*(?:/|out\s+of|of)\s*" + _NUMBER, re.IGNORECASE)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_LABELLED = re.compile(
    r"(?:scores?|rating|rated|grade)\s*(?:is|of|=|:)?\s*\**\s*" + _NUMBER, re.IGNORECASE
)
_BARE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.]|\s*/)")
# A number word counts alone ("Seven."), not inside a sentence ("no one knows").
_WORD_ONLY = re.compile(r"\W*(" + "|".join(_WORDS) + r")\W*", re.IGNORECASE)


def _number(token: str) -> float:
    return float(_WORDS.get(token.lower(), token) if token.lower() in _WORDS else token)


def parse_score(text: str, scale: float = 10.0) -> float | None:
    """A score in ``[0, 1]`` from a model's free text, or ``None`` if there is none.

    Read in this order: "a/b" or "a out of b" (scaled by b), a percentage,
    a labelled score ("Score: 7", "rating = 8.5"), then the first bare number,
    then a number word standing alone; these last are scaled by ``scale``. Values are
    clamped to ``[0, 1]``.
    """
    if not text:
        return None
    value: float | None = None
    if match := _OUT_OF.search(text):
        top = _number(match.group(2))
        value = _number(match.group(1)) / top if top > 0 else None
    elif match := _PERCENT.search(text):
        value = float(match.group(1)) / 100
    elif (
        (match := _LABELLED.search(text))
        or (match := _BARE.search(text))
        or (match := _WORD_ONLY.fullmatch(text))
    ):
        value = _number(match.group(1)) / scale
    if value is None:
        return None
    return min(1.0, max(0.0, value))


@dataclass
class ThoughtNode:
    """One thought: its text, the model's score (``None`` when unreadable), its children."""

    thought: str
    depth: int
    score: float | None = None
    score_text: str = ""
    children: list[ThoughtNode] = field(default_factory=list)
    expanded: bool = False

    def walk(self) -> Iterator[ThoughtNode]:
        yield self
        for child in self.children:
            yield from child.walk()


StopReason = Literal["depth", "max_calls", "max_tokens", "no_candidates"]


@dataclass
class ThoughtTree:
    """The searched tree, the best path from the root, and what the search cost."""

    problem: str
    root: ThoughtNode
    best_path: list[ThoughtNode]
    calls: int
    tokens: int
    stopped: StopReason

    @property
    def best(self) -> ThoughtNode | None:
        return self.best_path[-1] if self.best_path else None


def _rank(node: ThoughtNode) -> float:
    return -1.0 if node.score is None else node.score


@dataclass(frozen=True)
class TreeOfThought:
    """Breadth, how many to keep, depth and budget of a tree-of-thought search."""

    breadth: int = 3
    keep: int = 2
    depth: int = 2
    max_calls: int = 30
    max_tokens: int = 20_000
    model: str = "default"
    temperature: float = 0.8
    max_thought_tokens: int = 160

    def __post_init__(self) -> None:
        if min(self.breadth, self.keep, self.depth, self.max_calls) < 1:
            raise ValueError("breadth, keep, depth and max_calls must be at least 1")

    def propose_messages(self, problem: str, path: list[str]) -> list[ChatMessage]:
        steps = "".join(f"\nStep {i}: {t}" for i, t in enumerate(path, 1))
        so_far = f"\nThe steps so far:{steps}" if path else ""
        return [
            ChatMessage(
                role="system",
                content="You propose one distinct next step towards solving a problem. "
                "Answer with the step only, in one or two sentences.",
            ),
            ChatMessage(role="user", content=f"Problem: {problem}{so_far}\nNext step:"),
        ]

    def score_messages(self, problem: str, path: list[str]) -> list[ChatMessage]:
        steps = "".join(f"\nStep {i}: {t}" for i, t in enumerate(path, 1))
        return [
            ChatMessage(
                role="system",
                content="You judge how promising a partial solution is. "
                "Answer with a score from 0 to 10 as 'Score: N', then one sentence why.",
            ),
            ChatMessage(role="user", content=f"Problem: {problem}\nProposed steps:{steps}"),
        ]

    def flow(self, problem: str) -> Flow[ThoughtTree]:
        root = ThoughtNode(thought="", depth=0, expanded=True)
        paths: dict[int, list[str]] = {id(root): []}
        frontier = [root]
        calls = tokens = 0
        stopped: StopReason = "depth"

        def exhausted() -> StopReason | None:
            if calls >= self.max_calls:
                return "max_calls"
            if tokens >= self.max_tokens:
                return "max_tokens"
            return None

        for level in range(1, self.depth + 1):
            candidates: list[ThoughtNode] = []
            proposals = 0  # the seed of each proposal: distinct, and repeatable
            for node in frontier:
                node.expanded = True
                for _ in range(self.breadth):
                    if reason := exhausted():
                        stopped = reason
                        break
                    reply = yield from ask(
                        ChatCompletionRequest(
                            model=self.model,
                            messages=self.propose_messages(problem, paths[id(node)]),
                            temperature=self.temperature,
                            seed=level * 1000 + proposals,
                            max_tokens=self.max_thought_tokens,
                        )
                    )
                    calls, tokens = calls + 1, tokens + reply.usage.total_tokens
                    proposals += 1
                    thought = text_of(reply).strip()
                    if not thought:
                        continue
                    child = ThoughtNode(thought=thought, depth=level)
                    node.children.append(child)
                    paths[id(child)] = [*paths[id(node)], thought]
                    candidates.append(child)
                    if reason := exhausted():
                        stopped = reason
                        break
                    verdict = yield from ask(
                        ChatCompletionRequest(
                            model=self.model,
                            messages=self.score_messages(problem, paths[id(child)]),
                            temperature=0,
                            max_tokens=48,
                        )
                    )
                    calls, tokens = calls + 1, tokens + verdict.usage.total_tokens
                    child.score_text = text_of(verdict)
                    child.score = parse_score(child.score_text)
                if stopped != "depth":
                    break
            if not candidates and stopped == "depth":
                stopped = "no_candidates"
            frontier = sorted(candidates, key=_rank, reverse=True)[: self.keep]
            if stopped != "depth" or not frontier:
                break
        return ThoughtTree(problem, root, _best_path(root), calls, tokens, stopped)


def _best_path(root: ThoughtNode) -> list[ThoughtNode]:
    """Root to the best leaf: at each step the highest-scored child (ties: the first)."""
    path: list[ThoughtNode] = []
    node = root
    while node.children:
        node = max(node.children, key=_rank)
        path.append(node)
    return path
