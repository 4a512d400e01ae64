"""Conversation compression: fit a chat history into a token budget.

The system prompt(s) at the head are kept word for word, and so are the most
recent turns (up to ``keep_recent`` messages, fewer if the budget demands,
never fewer than the last one). Everything between is summarised by the
model through the gateway and replaced by one system message carrying the
summary. Tokens are the gateway's estimate
(:func:`gatehouse.catalog.tokens.prompt_tokens`). A history that already fits
is returned unchanged, without a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gatehouse.catalog.tokens import prompt_tokens
from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.prompts._flow import Flow, ask, text_of

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
_HEAD_ROLES = {"system", "developer"}


def count_tokens(messages: Sequence[ChatMessage]) -> int:
    if not messages:
        return 0
    return prompt_tokens(ChatCompletionRequest(model="count", messages=list(messages)))


@dataclass(frozen=True, slots=True)
class Compressed:
    """The compressed history and what was done to it."""

    messages: list[ChatMessage]
    summary: str | None
    summarised: int
    tokens_before: int
    tokens_after: int
    fits: bool


@dataclass(frozen=True)
class Compressor:
    """Keeps the head and the recent turns, summarises the middle, to fit ``budget``."""

    budget: int
    keep_recent: int = 4
    model: str = "default"
    summary_tokens: int = 200
    # The transcript sent for summary keeps its most recent characters up to this.
    max_transcript_chars: int = 6000

    def split(
        self, messages: Sequence[ChatMessage]
    ) -> tuple[list[ChatMessage], list[ChatMessage], list[ChatMessage]]:
        """Head (leading system messages), middle (to summarise) and recent turns. Pure."""
        head_len = 0
        while head_len < len(messages) and messages[head_len].role in _HEAD_ROLES:
            head_len += 1
        head, rest = list(messages[:head_len]), list(messages[head_len:])
        reserve = ChatMessage(role="system", content=SUMMARY_PREFIX + "x" * 4 * self.summary_tokens)
        recent: list[ChatMessage] = []
        for message in reversed(rest):
            if len(recent) >= self.keep_recent:
                break
            trial = [message, *recent]
            if recent and count_tokens([*head, reserve, *trial]) > self.budget:
                break
            recent = trial
        return head, rest[: len(rest) - len(recent)], recent

    def transcript(self, middle: Sequence[ChatMessage]) -> str:
        text = "\n".join(f"{m.role}: {m.text()}" for m in middle)
        return text[-self.max_transcript_chars :]

    def flow(self, messages: Sequence[ChatMessage]) -> Flow[Compressed]:
        before = count_tokens(messages)
        if before <= self.budget:
            return Compressed(list(messages), None, 0, before, before, True)
        head, middle, recent = self.split(messages)
        if not middle:
            return Compressed(list(messages), None, 0, before, before, False)
        words = max(20, self.summary_tokens * 3 // 4)
        request = ChatCompletionRequest(
            model=self.model,
            messages=[
                ChatMessage(
                    role="system",
                    content="Summarise the conversation below so that it can be continued "
                    "without it. Keep facts, names, numbers, decisions and open questions. "
                    f"At most {words} words.",
                ),
                ChatMessage(role="user", content=self.transcript(middle)),
            ],
            temperature=0,
            max_tokens=self.summary_tokens,
        )
        completion = yield from ask(request)
        summary = text_of(completion).strip()
        out = [*head, ChatMessage(role="system", content=SUMMARY_PREFIX + summary), *recent]
        after = count_tokens(out)
        return Compressed(out, summary, len(middle), before, after, after <= self.budget)
