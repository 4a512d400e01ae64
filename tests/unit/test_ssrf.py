"""Server-side request forgery (OWASP API7): gatehouse fetches no URL a caller sends.

- Every place in ``src`` that opens an outbound HTTP client or connection is
  listed here with where its address comes from (the configuration, or the
  command line of a CLI tool); a new one fails the inventory until reviewed.
- A request cannot move a provider: fields such as ``api_base`` or
  ``base_url`` in a body change nothing about where the call goes, for the
  OpenAI-compatible, Anthropic and Gemini providers.
- Image URLs in chat are handed to the provider as URLs (which fetches them
  itself, as their APIs document) or refused (Gemini, which cannot fetch
  them): gatehouse never connects to them. Neither does it to a RAG
  document's ``source``, which is stored as text. A listening socket proves
  it: it is never connected to.
"""

from __future__ import annotations

import ast
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest

from gatehouse.core.config import DeploymentConfig
from gatehouse.core.errors import UnsupportedParameterError
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.providers import MockTransport, UpstreamRequest, UpstreamResponse
from gatehouse.providers.anthropic import AnthropicProvider
from gatehouse.providers.base import ModelInfo
from gatehouse.providers.gemini import GeminiProvider
from gatehouse.providers.openai_compat import OpenAICompatProvider

from .governed import Governed, governed_app
from .rag_fakes import BagOfWords
from .test_provider_transport import COMPLETION

SRC = Path(__file__).resolve().parents[2] / "src" / "gatehouse"
# Calls that open an outbound connection, by the name they are called with.
OUTBOUND = {
    "httpx.AsyncClient",
    "httpx.Client",
    "httpx.get",
    "httpx.post",
    "httpx.request",
    "httpx.stream",
    "aiohttp.ClientSession",
    "loop.create_connection",
    "asyncio.open_connection",
    "socket.create_connection",
    "urllib.request.urlopen",
    "urlopen",
    "http.client.HTTPConnection",
    "http.client.HTTPSConnection",
}
# Each, reviewed: where its address comes from.
REVIEWED = {
    # providers.base_url of a deployment (configuration), never a request.
    "providers/http_transport.py": 1,
    "providers/http1.py": 1,
    # gateway.url of a RAG service (configuration).
    "gateway/remote.py": 1,
    # rag.vector.url (configuration).
    "rag/chroma.py": 2,
    # alerts.webhook_url (configuration).
    "observability/alerts.py": 1,
    # ui.oidc.issuer (configuration); the token and JWKS endpoints from its
    # discovery document, whose issuer must be the configured one.
    "ui/oidc.py": 1,
    # CLI tools and the client library: the URL their user passes.
    "cli/capacity.py": 1,
    "evals/remote.py": 1,
    "client/_sync.py": 1,
    "client/_async.py": 1,
}
PROVIDER_BASE = {
    "openai_compat": "http://up.test/v1",
    "anthropic": "http://a.test",
    "gemini": "http://g.test",
}
FORGED_BASES = {
    "api_base": "http://169.254.169.254/latest",
    "base_url": "http://169.254.169.254/latest",
    "url": "http://169.254.169.254/latest",
    "extra_headers": {"host": "169.254.169.254"},
}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _outbound_calls() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in OUTBOUND:
                where = path.relative_to(SRC).as_posix()
                found[where] = found.get(where, 0) + 1
    return found


def test_every_outbound_connection_in_src_is_reviewed() -> None:
    assert _outbound_calls() == REVIEWED


@contextmanager
def listener() -> Iterator[str]:
    """An address that must never be connected to; raises if it was."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        host, port = server.getsockname()
        yield f"http://{host}:{port}/latest/meta-data/iam"
        with pytest.raises(BlockingIOError):
            server.accept()


def _provider(kind: str, handler: Any) -> Any:
    config = DeploymentConfig(provider=kind, model="up-model", base_url=PROVIDER_BASE[kind])
    info = ModelInfo(id=f"{kind}#0", kind="chat", owned_by=kind, context_window=0)
    classes = {
        "openai_compat": OpenAICompatProvider,
        "anthropic": AnthropicProvider,
        "gemini": GeminiProvider,
    }
    return classes[kind](config, info=info, api_key="k", transport=MockTransport(handler))


ANSWERS: dict[str, dict[str, Any]] = {
    "openai_compat": COMPLETION,
    "anthropic": {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "up-model",
        "content": [{"type": "text", "text": "hi"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 1, "output_tokens": 1},
    },
    "gemini": {
        "candidates": [
            {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}
        ],
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1},
    },
}


def _image_chat(model: str, image_url: str) -> dict[str, Any]:
    """A chat body with an image at ``image_url`` and forged provider addresses."""
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": image_url}},
    ]
    return {"model": model, "messages": [{"role": "user", "content": content}], **FORGED_BASES}


def _request(image_url: str) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(_image_chat("up-model", image_url))


@pytest.mark.parametrize("kind", sorted(PROVIDER_BASE))
async def test_a_request_cannot_choose_where_a_provider_connects(kind: str) -> None:
    sent: list[UpstreamRequest] = []

    def handler(request: UpstreamRequest) -> UpstreamResponse:
        sent.append(request)
        return UpstreamResponse(200, {}, orjson.dumps(ANSWERS[kind]))

    provider = _provider(kind, handler)
    with listener() as internal:
        if kind == "gemini":
            # Gemini cannot fetch an http(s) image: refused, not fetched for it.
            with pytest.raises(UnsupportedParameterError):
                await provider.complete(_request(internal))
            await provider.complete(_request("data:image/png;base64,iVBORw0KGgo="))
        else:
            await provider.complete(_request(internal))
            # Handed to the provider as a URL, for it to fetch (or not).
            assert internal in sent[0].body.decode()
    assert sent, kind
    for request in sent:
        assert request.url.startswith(PROVIDER_BASE[kind]), request.url
        assert "169.254.169.254" not in request.url
        assert "169.254.169.254" not in str(request.headers)


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    pricing = {"models": {"test/bow": {"input_cost_per_token": 0.001}}}
    async for governed in governed_app(tmp_path, providers=[BagOfWords()], pricing=pricing):
        yield governed


async def test_urls_in_chat_and_rag_documents_are_never_fetched(gov: Governed) -> None:
    key = await gov.new_key(name="rag", scopes=["chat", "embeddings", "rag:read", "rag:write"])
    auth = {"authorization": f"Bearer {key}"}
    with listener() as internal:
        chat = await gov.http.post(
            "/v1/chat/completions", json=_image_chat("test/echo", internal), headers=auth
        )
        assert chat.status_code == 200, chat.text
        made = await gov.http.post(
            "/v1/rag/collections", json={"name": "kb", "embedding_model": "test/bow"}, headers=auth
        )
        assert made.status_code == 201, made.text
        added = await gov.http.post(
            "/v1/rag/collections/kb/documents",
            json={"documents": [{"id": internal, "text": "Cats purr.", "source": internal}]},
            headers=auth,
        )
        assert added.status_code == 200, added.text
        found = await gov.http.post(
            "/v1/rag/collections/kb/search", json={"query": "cats"}, headers=auth
        )
        assert found.status_code == 200, found.text
        assert internal in found.text  # kept as text, and only as text
