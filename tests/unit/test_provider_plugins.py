"""A provider from a package outside gatehouse, found through its entry point.

The test writes a tiny installed distribution (a package and its dist-info
with an ``entry_points.txt``) into a temporary folder on ``sys.path``, names
its provider in the config, and serves a chat call through it with the
official openai SDK: nothing in gatehouse is edited or registered by hand.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import httpx
import openai
import pytest

from gatehouse.core.config import Settings
from gatehouse.core.errors import ConfigError
from gatehouse.gateway import build_gateway
from gatehouse.providers.registry import ProviderRegistry
from gatehouse.server import create_app

PLUGIN = '''
from gatehouse.core.types import AssistantMessage, ChatCompletion, Choice, Usage
from gatehouse.providers.base import Readiness


class ShoutProvider:
    """Answers with the last user message in capitals."""

    def __init__(self, config, *, info, api_key):
        self.info = info
        self.model = config.model

    def readiness(self):
        return Readiness(True, "plugin")

    async def complete(self, request):
        text = request.messages[-1].text().upper()
        return ChatCompletion(
            id="chatcmpl-shout",
            created=0,
            model=self.model,
            choices=[Choice(message=AssistantMessage(content=text), finish_reason="stop")],
            usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
        )

    async def stream(self, request):
        raise NotImplementedError
        yield

    async def aclose(self):
        pass
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    site = tmp_path / "site"
    (site / "shout_plugin").mkdir(parents=True)
    (site / "shout_plugin" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "shout_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[gatehouse.providers]\nshout = shout_plugin:ShoutProvider\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return tmp_path


async def test_a_plugin_provider_serves_a_call(plugin: Path) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": plugin / "data",
            "local": {"chat": {"enabled": False}, "embeddings": {"enabled": False}},
            "models": [{"name": "loud", "deployments": [{"provider": "shout", "model": "s-1"}]}],
        }
    )
    app = create_app(settings)
    await app.state.gateway.start()  # httpx's ASGI transport runs no lifespan
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
            client = openai.AsyncOpenAI(
                api_key="unused", base_url="http://gatehouse/v1", http_client=http, max_retries=0
            )
            reply = await client.chat.completions.create(
                model="loud", messages=[{"role": "user", "content": "hello plugin"}]
            )
    finally:
        await app.state.gateway.stop()
    assert reply.choices[0].message.content == "HELLO PLUGIN"


def test_an_unknown_provider_is_a_config_error_naming_the_key(plugin: Path) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": plugin / "data",
            "models": [{"name": "x", "deployments": [{"provider": "nope", "model": "m"}]}],
        }
    )
    with pytest.raises(ConfigError) as caught:
        build_gateway(settings, started_at=0)
    message = str(caught.value)
    assert "models[0].deployments[0].provider" in message
    assert "'nope'" in message
    assert "shout" in message  # the installed plugin is listed among the known names


def test_a_plugin_that_fails_to_load_is_a_config_error() -> None:
    from importlib.metadata import EntryPoint

    broken = EntryPoint("broken", "no_such_module:Provider", "gatehouse.providers")
    registry = ProviderRegistry(discover=lambda: [broken])
    with pytest.raises(ConfigError, match="failed to load"):
        registry.builder("broken", where="models[0].deployments[0]")


def test_a_registered_builder_wins_over_the_built_in_one() -> None:
    registry = ProviderRegistry(discover=list)

    def builder(*args: object, **kwargs: object) -> object:
        raise AssertionError("not called here")

    registry.register("gemini", builder)  # type: ignore[arg-type]
    assert registry.builder("gemini", where="w") is builder
