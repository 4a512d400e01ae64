"""Few-shot prompts: the examples most like the query that fit a token budget.

:class:`FewShotSelector` embeds its examples once (through the client, so the
calls run as the caller) and, for each query, ranks them by cosine
similarity to the query's embedding, then takes them best first while they
fit ``token_budget`` (an example that does not fit is skipped, a smaller one
after it may still fit), up to ``max_examples``. Tokens are counted with the
gateway's own estimate (:func:`gatehouse.catalog.tokens.prompt_tokens`). The
chosen examples are placed most similar last, nearest the query.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gatehouse.catalog.tokens import prompt_tokens
from gatehouse.core.types import ChatCompletionRequest, ChatMessage, EmbeddingRequest
from gatehouse.prompts._flow import Flow, embed


@dataclass(frozen=True, slots=True)
class Example:
    """One worked example: an input and the output the model should give for it."""

    input: str
    output: str

    def messages(self) -> list[ChatMessage]:
        return [
            ChatMessage(role="user", content=self.input),
            ChatMessage(role="assistant", content=self.output),
        ]


def example_tokens(example: Example) -> int:
    """The estimated prompt tokens of one example (its two messages)."""
    return prompt_tokens(ChatCompletionRequest(model="count", messages=example.messages()))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def choose(
    similarities: Sequence[float],
    costs: Sequence[int],
    budget: int,
    max_examples: int | None = None,
) -> list[int]:
    """Indices of the examples to use: most similar first while they fit the budget,
    returned in ascending similarity (the best nearest the query). Pure."""
    order = sorted(range(len(similarities)), key=lambda i: (-similarities[i], i))
    chosen: list[int] = []
    spent = 0
    for i in order:
        if max_examples is not None and len(chosen) >= max_examples:
            break
        if spent + costs[i] <= budget:
            chosen.append(i)
            spent += costs[i]
    return chosen[::-1]


class FewShotSelector:
    """Chooses examples for a query by embedding similarity and a token budget."""

    def __init__(
        self,
        examples: Sequence[Example],
        *,
        embedding_model: str = "local/minilm",
        token_budget: int = 512,
        max_examples: int | None = None,
    ) -> None:
        if token_budget < 1:
            raise ValueError("token_budget must be at least 1")
        self.examples = list(examples)
        self.embedding_model = embedding_model
        self.token_budget = token_budget
        self.max_examples = max_examples
        self.costs = [example_tokens(e) for e in self.examples]
        self._vectors: list[list[float]] | None = None

    def flow(self, query: str) -> Flow[list[Example]]:
        """The examples for ``query``; embeds the examples on first use, with the query."""
        if not self.examples:
            return []
        texts = [query] if self._vectors is not None else [query, *(e.input for e in self.examples)]
        answer = yield from embed(EmbeddingRequest(model=self.embedding_model, input=texts))
        vectors = [d.embedding for d in sorted(answer.data, key=lambda d: d.index)]
        if len(vectors) != len(texts) or not all(isinstance(v, list) for v in vectors):
            raise ValueError("the embeddings answer does not match the texts sent")
        floats = [list(map(float, v)) for v in vectors if isinstance(v, list)]
        if self._vectors is None:
            self._vectors = floats[1:]
        similarities = [cosine(floats[0], v) for v in self._vectors]
        picked = choose(similarities, self.costs, self.token_budget, self.max_examples)
        return [self.examples[i] for i in picked]

    def messages(
        self, query: str, examples: Sequence[Example], system: str | None = None
    ) -> list[ChatMessage]:
        """The chat messages: the system prompt, the examples as turns, then the query."""
        head = [ChatMessage(role="system", content=system)] if system else []
        shots = [m for e in examples for m in e.messages()]
        return [*head, *shots, ChatMessage(role="user", content=query)]
