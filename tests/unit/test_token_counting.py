"""Token counting: tiktoken offline, the provider count endpoints, the Responses mapping,
and the two routes, governed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from unittest import mock

import anthropic
import httpx2
import orjson
import pytest
import tiktoken_ext.openai_public as openai_public

from gatehouse.catalog import prompt_tokens, tokens
from gatehouse.catalog.tokens import openai_encoding, shipped_ranks, tiktoken_tokens
from gatehouse.core.config import DeploymentConfig, RouterConfig
from gatehouse.core.errors import (
    PermissionDeniedError,
    UnsupportedParameterError,
    ValidationFailedError,
)
from gatehouse.core.principal import Principal
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.faces.input_tokens import InputTokensRequest, responses_to_openai
from gatehouse.gateway import ModelRegistry
from gatehouse.gateway.counting import count_tokens
from gatehouse.gateway.routing import Deployment, DeploymentStats
from gatehouse.gateway.routing.registry import ModelGroup, new_breaker, new_capacity
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.anthropic import AnthropicProvider
from gatehouse.providers.base import ModelInfo
from gatehouse.providers.gemini import GeminiProvider

from .fakes import EchoChat
from .governed import Governed, governed_app

# The example of OpenAI's "How to count tokens with tiktoken" cookbook, with the
# prompt_tokens its API reported: 129 for gpt-4 (cl100k_base), 124 for gpt-4o
# (o200k_base).
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates "
        "corporate jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the "
        "client deliverable.",
    },
]


def chat(model: str, messages: list[dict[str, Any]], **extra: Any) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": model, "messages": messages, **extra})


# -- tiktoken, offline --


@pytest.mark.parametrize("name", ["o200k_base", "cl100k_base"])
def test_the_shipped_encodings_are_tiktokens_own(name: str) -> None:
    """Same ranks (checked by hash on load), pattern and special tokens as the
    encoding tiktoken would have downloaded."""
    file, sha256, pattern, specials = tokens._SHIPPED[name]
    ranks = shipped_ranks(file, sha256)
    assert ranks is not None
    with mock.patch.object(openai_public, "load_tiktoken_bpe", return_value=ranks) as load:
        reference = openai_public.ENCODING_CONSTRUCTORS[name]()
    assert load.call_args.kwargs["expected_hash"] == sha256
    assert reference["pat_str"] == pattern
    assert reference["special_tokens"] == specials


def test_ranks_that_are_not_openais_are_refused() -> None:
    assert shipped_ranks("cl100k", "0" * 64) is None


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 129), ("gpt-4o", 124)])
def test_tiktoken_counts_as_openai_did_in_the_cookbook(model: str, expected: int) -> None:
    encoding = openai_encoding(model)
    assert encoding is not None
    assert tiktoken_tokens(chat(model, COOKBOOK), encoding) == expected


def test_models_tiktoken_does_not_know_have_no_encoding() -> None:
    assert openai_encoding("meta-llama/Llama-3.1-8B-Instruct") is None
    assert openai_encoding("gpt-4.1-mini") is openai_encoding("gpt-4o")


def test_tools_and_images_add_to_the_tiktoken_count() -> None:
    encoding = openai_encoding("gpt-4o")
    assert encoding is not None
    plain = tiktoken_tokens(chat("gpt-4o", [{"role": "user", "content": "hi"}]), encoding)
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {}}}
    with_tool = chat("gpt-4o", [{"role": "user", "content": "hi"}], tools=[tool])
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    with_image = chat(
        "gpt-4o", [{"role": "user", "content": [image, {"type": "text", "text": "hi"}]}]
    )
    assert tiktoken_tokens(with_tool, encoding) > plain
    assert tiktoken_tokens(with_image, encoding) == plain + tokens.TIKTOKEN_IMAGE


# -- which method a deployment gets --


def _group(name: str, provider: Any, config: DeploymentConfig | None) -> ModelGroup:
    router = RouterConfig()
    deployment = Deployment(
        id=f"{name}#0",
        group=name,
        provider=provider,
        config=config,
        breaker=new_breaker(router.breaker),
        stats=DeploymentStats(alpha=router.latency_ewma_alpha),
        capacity=new_capacity(config, router),
    )
    info = ModelInfo(id=name, kind="chat", owned_by="gatehouse", context_window=0)
    return ModelGroup(name=name, info=info, deployments=[deployment])


def _openai_deployment(model: str) -> DeploymentConfig:
    return DeploymentConfig(provider="openai_compat", model=model, base_url="http://upstream/v1")


def _registry() -> ModelRegistry:
    return ModelRegistry(
        groups=[
            _group("gpt", EchoChat("gpt"), _openai_deployment("gpt-4o")),
            _group("llama", EchoChat("llama"), _openai_deployment("llama-3.1-8b")),
            _group("echo", EchoChat("echo"), None),
        ]
    )


async def test_openai_upstreams_are_counted_with_tiktoken_others_estimated() -> None:
    registry, user = _registry(), Principal(id="user", kind="key")
    messages = COOKBOOK
    counted = await count_tokens(registry, chat("gpt", messages), user)
    assert (counted.input_tokens, counted.method) == (124, "tiktoken")
    estimated = await count_tokens(registry, chat("llama", messages), user)
    assert estimated.method == "estimate"
    assert estimated.input_tokens == prompt_tokens(chat("llama", messages))


async def test_counting_needs_the_chat_scope_and_the_model() -> None:
    registry = _registry()
    request = chat("gpt", COOKBOOK)
    with pytest.raises(PermissionDeniedError, match="chat"):
        await count_tokens(
            registry, request, Principal(id="k", kind="key", scopes=frozenset({"embeddings"}))
        )
    with pytest.raises(PermissionDeniedError, match="model"):
        await count_tokens(
            registry, request, Principal(id="k", kind="key", models=frozenset({"echo"}))
        )


# -- the providers' own count endpoints --


def _mock(status: int, answer: dict[str, Any], seen: list[UpstreamRequest]) -> MockTransport:
    def handler(request: UpstreamRequest) -> UpstreamResponse:
        seen.append(request)
        return UpstreamResponse(status, {}, orjson.dumps(answer))

    return MockTransport(handler)


def _info(name: str) -> ModelInfo:
    return ModelInfo(id=name, kind="chat", owned_by="x", context_window=0)


async def test_anthropic_deployments_ask_the_count_endpoint() -> None:
    seen: list[UpstreamRequest] = []
    config = DeploymentConfig(provider="anthropic", model="claude-x", base_url="http://up")
    provider = AnthropicProvider(
        config, info=_info("claude"), api_key="k", transport=_mock(200, {"input_tokens": 42}, seen)
    )
    request = chat(
        "claude",
        [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}],
        max_tokens=100,
        temperature=0.5,
    )
    assert await provider.count_tokens(request) == 42
    assert seen[0].url == "http://up/v1/messages/count_tokens"
    body = orjson.loads(seen[0].body)
    # Only what the count endpoint accepts: it refuses max_tokens and sampling fields.
    assert set(body) == {"model", "messages", "system"}
    assert body["model"] == "claude-x"


async def test_gemini_deployments_ask_count_tokens_with_the_whole_request() -> None:
    seen: list[UpstreamRequest] = []
    config = DeploymentConfig(provider="gemini", model="gemini-x", base_url="http://up")
    provider = GeminiProvider(
        config, info=_info("gem"), api_key="k", transport=_mock(200, {"totalTokens": 7}, seen)
    )
    request = chat("gem", [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}])
    assert await provider.count_tokens(request) == 7
    assert seen[0].url == "http://up/v1beta/models/gemini-x:countTokens"
    whole = orjson.loads(seen[0].body)["generateContentRequest"]
    assert whole["model"] == "models/gemini-x"
    assert whole["systemInstruction"] == {"parts": [{"text": "sys"}]}


async def test_a_failing_count_endpoint_falls_back_to_the_estimate() -> None:
    seen: list[UpstreamRequest] = []
    config = DeploymentConfig(provider="anthropic", model="claude-x", base_url="http://up")
    provider = AnthropicProvider(
        config,
        info=_info("claude"),
        api_key="k",
        transport=_mock(500, {"type": "error", "error": {"type": "api_error"}}, seen),
    )
    registry = ModelRegistry(groups=[_group("claude", provider, config)])
    request = chat("claude", [{"role": "user", "content": "hello there"}])
    counted = await count_tokens(registry, request, Principal(id="user", kind="key"))
    assert seen  # it asked
    assert (counted.method, counted.input_tokens) == ("estimate", prompt_tokens(request))


# -- the Responses input, as a chat request (the Responses face's translation) --


def test_responses_input_maps_to_chat_messages() -> None:
    body = InputTokensRequest.model_validate(
        {
            "model": "m",
            "instructions": "be brief",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ],
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
        }
    )
    request = responses_to_openai(body)
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool"]
    assert [c["id"] for c in request.messages[2].tool_calls or []] == ["c1", "c2"]
    assert request.tools == [
        {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    ]
    assert responses_to_openai(InputTokensRequest(model="m", input="hi")).messages[0].text() == "hi"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": "m", "input": "hi", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"model": "m", "input": [{"type": "file_search_call"}]}, "input[0].type"),
        ({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "m", "input": "hi", "conversation": "conv_1"}, "conversation"),
    ],
)
def test_what_cannot_be_counted_is_a_400_naming_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises((UnsupportedParameterError, ValidationFailedError)) as caught:
        responses_to_openai(InputTokensRequest.model_validate(body))
    assert caught.value.param == param


# -- the routes, governed --


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


def _anthropic_sdk(gov: Governed, key: str) -> anthropic.AsyncAnthropic:
    # The anthropic SDK runs on httpx2: the same in-process app, through its transport.
    app = gov.http._transport.app  # type: ignore[attr-defined]
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://gatehouse")
    return anthropic.AsyncAnthropic(
        api_key=key, base_url="http://gatehouse", http_client=http, max_retries=0
    )


async def test_the_anthropic_sdk_counts_and_reads_the_method(gov: Governed) -> None:
    key = await gov.new_key()
    counted = await _anthropic_sdk(gov, key).messages.count_tokens(
        model="test/echo",
        system="be brief",
        messages=[{"role": "user", "content": "how many tokens is this?"}],
    )
    expected = prompt_tokens(
        chat(
            "test/echo",
            [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "how many tokens is this?"},
            ],
        )
    )
    assert counted.input_tokens == expected
    # An extra field the SDK keeps and does not choke on.
    assert counted.model_extra == {"method": "estimate"}


async def test_the_openai_sdk_counts_responses_input(gov: Governed) -> None:
    key = await gov.new_key()
    counted = await gov.sdk(key).responses.input_tokens.count(
        model="test/echo", instructions="be brief", input="how many tokens is this?"
    )
    assert counted.object == "response.input_tokens"
    assert counted.input_tokens > 0
    assert counted.model_extra == {"method": "estimate"}


async def test_a_key_without_the_model_is_refused_in_each_shape(gov: Governed) -> None:
    key = await gov.new_key(models=["default"])
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        await _anthropic_sdk(gov, key).messages.count_tokens(
            model="test/echo", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.body["type"] == "error"  # type: ignore[index]
    response = await gov.http.post(
        "/v1/responses/input_tokens",
        json={"model": "test/echo", "input": "hi"},
        headers={"authorization": f"Bearer {key}"},
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


async def test_a_key_without_the_chat_scope_is_refused(gov: Governed) -> None:
    key = await gov.new_key(scopes=["embeddings"])
    for path, body in [
        ("/v1/messages/count_tokens", {"model": "test/echo", "messages": []}),
        ("/v1/responses/input_tokens", {"model": "test/echo", "input": "hi"}),
    ]:
        response = await gov.http.post(path, json=body, headers={"x-api-key": key})
        assert response.status_code == 403, path
        assert "chat" in response.text


async def test_a_traced_provider_counts_as_the_one_it_traces(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from gatehouse.gateway.tracing import SpanTracer

    seen: list[UpstreamRequest] = []
    config = DeploymentConfig(provider="anthropic", model="claude-x", base_url="http://up")
    provider = AnthropicProvider(
        config, info=_info("claude"), api_key="k", transport=_mock(200, {"input_tokens": 9}, seen)
    )
    tracer = SpanTracer(TracerProvider().get_tracer("test"))
    traced = tracer.provider(provider, deployment="claude#0", group="claude", config=config)
    assert traced is not provider
    registry = ModelRegistry(groups=[_group("claude", traced, config)])
    counted = await count_tokens(
        registry, chat("claude", [{"role": "user", "content": "hi"}]), Principal(id="u", kind="key")
    )
    assert (counted.input_tokens, counted.method) == (9, "provider")
