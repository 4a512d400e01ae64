"""How many tokens a request's prompt takes, before any tokenizer has seen it.

One function, two answers:

- the estimate (4 characters a token, 4 tokens of framing a message): cheap
  and close for English prose. Token-per-minute limits, soft budgets and the
  router's context-window check use it; they settle with the real count or
  only steer.
- the bound (``bound=True``): never below what any upstream will count, so a
  hard budget that reserves it cannot be overspent. No tokenizer emits more
  tokens than its text has UTF-8 bytes: byte-level BPE (GPT, Llama 3, Qwen)
  and SentencePiece with byte fallback (Llama 2, Gemma, Mistral) spend at
  least one byte a token, and the worst case is a token per byte. To the bytes
  of every message (text, name, tool calls) it adds what a chat template puts
  around each message and in front of the prompt, the tool schemas and the
  instructions providers add with them, and an allowance per image.
"""

from __future__ import annotations

import json
from typing import Any

from gatehouse.core.types import ChatCompletionRequest, EmbeddingRequest, ImagePart

# Role markers, separators and the end-of-turn token around one message: OpenAI
# counts 3-4, Llama 3 and ChatML templates 5.
MESSAGE_OVERHEAD = 8
# Beginning-of-text, the system prompt some templates add when the caller gives
# none (Llama 3.1's dates, Qwen's "You are Qwen", gpt-oss's channels: 20 to 70
# tokens), and the header that opens the reply.
PROMPT_OVERHEAD = 128
# The instructions a provider puts in front of tool definitions (Anthropic
# documents about 350 tokens) and the framing of each definition.
TOOLS_OVERHEAD = 512
TOOL_OVERHEAD = 16
# An image costs what the provider says, not its bytes: OpenAI at most 1,445
# (gpt-4o, high detail), Anthropic about 1,600, Gemini 258 a 768-pixel tile.
IMAGE_TOKENS = 4096
# The special tokens an embedding model adds to each input ([CLS] and [SEP]).
INPUT_OVERHEAD = 2


def prompt_tokens(request: ChatCompletionRequest | EmbeddingRequest, *, bound: bool = False) -> int:
    """The prompt tokens of ``request``: an estimate, or with ``bound`` an upper bound."""
    if isinstance(request, EmbeddingRequest):
        return _input_tokens(request, bound)
    if not bound:
        return sum(len(m.text()) for m in request.messages) // 4 + 4 * len(request.messages)
    total = PROMPT_OVERHEAD
    for message in request.messages:
        total += MESSAGE_OVERHEAD + _bytes(message.text())
        if message.name:
            total += _bytes(message.name)
        if message.tool_call_id:
            total += _bytes(message.tool_call_id)
        if message.tool_calls:
            total += _json_bytes(message.tool_calls)
        if isinstance(message.content, list):
            total += IMAGE_TOKENS * sum(isinstance(p, ImagePart) for p in message.content)
    if request.tools:
        # Rendered indented, as some templates do (Llama 3.1: four spaces): the
        # longest rendering is the safe one to count.
        total += TOOLS_OVERHEAD + TOOL_OVERHEAD * len(request.tools)
        total += _json_bytes(request.tools)
    if isinstance(request.tool_choice, dict):
        total += _json_bytes(request.tool_choice)
    if request.response_format:
        # A JSON schema reaches the model as text (OpenAI's structured outputs,
        # Anthropic's forced tool).
        total += _json_bytes(request.response_format)
    return total


def _input_tokens(request: EmbeddingRequest, bound: bool) -> int:
    ids = 0  # token-id inputs are already counted
    if isinstance(request.input, list):
        for item in request.input:
            if isinstance(item, int):
                ids += 1
            elif isinstance(item, list):
                ids += len(item)
    texts = request.texts()
    if not texts:
        return ids
    if bound:
        return ids + sum(_bytes(t) + INPUT_OVERHEAD for t in texts)
    return ids + sum(len(t) for t in texts) // 4 + 1


def _bytes(text: str) -> int:
    if text.isascii():
        return len(text)
    # surrogatepass: a lone surrogate from JSON still counts (3 bytes) instead of raising.
    return len(text.encode("utf-8", "surrogatepass"))


def _json_bytes(value: Any) -> int:
    # ASCII escapes (6 bytes for any non-ASCII character) are never shorter than UTF-8.
    return len(json.dumps(value, indent=4))
