"""Token counting against real servers, through the official SDKs: the real local
model's tokenizer, and Anthropic, Gemini and OpenAI upstreams on the fake upstream."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import write_config

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


@pytest.fixture(scope="module")
def upstreams(
    tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream
) -> Iterator[RunningServer]:
    """Model groups on the fake upstream: Anthropic, Gemini, gpt-4o and a Llama."""
    root = tmp_path_factory.mktemp("counting")
    groups = [
        ("claude", "anthropic", "claude-x", upstream.base_url),
        ("gem", "gemini", "gemini-x", upstream.base_url),
        ("gpt", "openai_compat", "gpt-4o", f"{upstream.base_url}/v1"),
        ("llama", "openai_compat", "llama-3.1-8b", f"{upstream.base_url}/v1"),
    ]
    extra = "\n".join(
        f"""  - name: {name}
    deployments:
      - {{provider: {provider}, model: {model}, base_url: '{base}'}}"""
        for name, provider, model, base in groups
    )
    server = start_server(root / "data", config=write_config(root / "g.yaml", upstream, extra))
    yield server
    stop_server(server)


def test_anthropic_and_gemini_upstreams_count_with_their_endpoints(
    upstreams: RunningServer, upstream: FakeUpstream
) -> None:
    sdk = anthropic.Anthropic(base_url=upstreams.base_url, api_key="unused", max_retries=0)
    for model, path in [("claude", "/v1/messages/count_tokens"), ("gem", ":countTokens")]:
        upstream.reset()
        counted = sdk.messages.count_tokens(
            model=model, system="be brief", messages=[{"role": "user", "content": "one two three"}]
        )
        # The fake counts a word a token: it saw the system prompt and the message.
        assert (counted.input_tokens, counted.model_extra) == (5, {"method": "provider"})
        assert upstream.requests[-1].path.endswith(path)


def test_openai_models_count_with_tiktoken_others_are_estimated(upstreams: RunningServer) -> None:
    client = openai.OpenAI(api_key="unused", base_url=f"{upstreams.base_url}/v1", max_retries=0)
    gpt = client.responses.input_tokens.count(model="gpt", input="Hello, world!")
    # o200k_base: "Hello", ",", " world", "!" and OpenAI's framing (3 + "user" + 3).
    assert (gpt.input_tokens, gpt.model_extra) == (11, {"method": "tiktoken"})
    llama = client.responses.input_tokens.count(model="llama", input="Hello, world!")
    assert llama.model_extra == {"method": "estimate"}
