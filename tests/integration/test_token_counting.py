"""Token counting against the real server and the real local model, through the official SDKs."""

from __future__ import annotations

import anthropic
import openai

from .conftest import RunningServer

MESSAGES: list[anthropic.types.MessageParam] = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris."},
    {"role": "user", "content": "And of Italy? Answer in one word, café-style: ¿sí?"},
]


def test_count_tokens_equals_what_a_local_messages_call_is_charged(
    server: RunningServer,
) -> None:
    sdk = anthropic.Anthropic(base_url=server.base_url, api_key="unused", max_retries=0)
    counted = sdk.messages.count_tokens(
        model="local/smollm2", system="You are terse.", messages=MESSAGES
    )
    message = sdk.messages.create(
        model="local/smollm2",
        system="You are terse.",
        messages=MESSAGES,
        max_tokens=1,
    )
    assert counted.input_tokens == message.usage.input_tokens
    assert counted.model_extra == {"method": "tokenizer"}


def test_responses_input_tokens_equals_the_local_chat_prompt(server: RunningServer) -> None:
    client = openai.OpenAI(api_key="unused", base_url=f"{server.base_url}/v1", max_retries=0)
    counted = client.responses.input_tokens.count(
        model="local/smollm2",
        instructions="You are terse.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Name a colour."}]},
        ],
    )
    completion = client.chat.completions.create(
        model="local/smollm2",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a colour."},
        ],
        max_tokens=1,
    )
    assert completion.usage is not None
    assert counted.input_tokens == completion.usage.prompt_tokens
    assert counted.model_extra == {"method": "tokenizer"}
