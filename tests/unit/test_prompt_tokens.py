"""The one prompt-token estimator: the cheap estimate, and the bound hard budgets reserve."""

from __future__ import annotations

from typing import Any

from gatehouse.catalog import prompt_tokens
from gatehouse.catalog.tokens import (
    IMAGE_TOKENS,
    MESSAGE_OVERHEAD,
    PROMPT_OVERHEAD,
    TOOLS_OVERHEAD,
)
from gatehouse.core.types import ChatCompletionRequest, EmbeddingRequest


def chat(*contents: Any, **extra: Any) -> ChatCompletionRequest:
    messages = [{"role": "user", "content": c} for c in contents]
    return ChatCompletionRequest.model_validate({"model": "m", "messages": messages, **extra})


def test_the_estimate_is_four_characters_a_token_and_four_a_message() -> None:
    assert prompt_tokens(chat("hi")) == 4  # where an upstream counted 10
    assert prompt_tokens(chat("x" * 400, "y" * 40)) == 110 + 8


def test_the_bound_counts_every_utf8_byte_and_the_template() -> None:
    assert prompt_tokens(chat("hi"), bound=True) == PROMPT_OVERHEAD + MESSAGE_OVERHEAD + 2
    # Four CJK characters are twelve bytes: a tokenizer may spend a token on each byte.
    assert prompt_tokens(chat("日本語版"), bound=True) == PROMPT_OVERHEAD + MESSAGE_OVERHEAD + 12
    # A lone surrogate (valid JSON, invalid UTF-8) is counted, not an error.
    assert prompt_tokens(chat("\ud800"), bound=True) == PROMPT_OVERHEAD + MESSAGE_OVERHEAD + 3


def test_the_bound_is_never_below_the_estimate() -> None:
    for text in ["", "a", "hello world " * 50, "🙂" * 30, "\n\t  \n" * 20]:
        request = chat(text, text)
        assert prompt_tokens(request, bound=True) >= prompt_tokens(request)


def test_tools_names_tool_calls_and_images_add_to_the_bound() -> None:
    plain = prompt_tokens(chat("hi"), bound=True)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with_tools = prompt_tokens(chat("hi", tools=tools, tool_choice="auto"), bound=True)
    assert with_tools > plain + TOOLS_OVERHEAD + len('"parameters"')
    image = [
        {"type": "text", "text": "hi"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    assert prompt_tokens(chat(image), bound=True) == plain + IMAGE_TOKENS
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    conversation = ChatCompletionRequest.model_validate(
        {
            "model": "m",
            "messages": [
                {"role": "assistant", "content": None, "tool_calls": [call]},
                {"role": "tool", "content": "42", "tool_call_id": "call_1", "name": "f"},
            ],
        }
    )
    assert prompt_tokens(conversation, bound=True) > PROMPT_OVERHEAD + 2 * MESSAGE_OVERHEAD + 40


def test_embedding_inputs() -> None:
    texts = EmbeddingRequest(model="e", input=["abcd", "ünï"])
    assert prompt_tokens(texts) == 7 // 4 + 1
    assert prompt_tokens(texts, bound=True) == (4 + 2) + (5 + 2)
    ids = EmbeddingRequest(model="e", input=[[1, 2, 3], [4]])
    assert prompt_tokens(ids) == prompt_tokens(ids, bound=True) == 4  # counted already
