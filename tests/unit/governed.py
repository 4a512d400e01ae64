"""A governed in-process app: master key, pricing, a fake clock, fake providers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai

from gatehouse.core.config import Settings
from gatehouse.core.types import EmbeddingRequest, EmbeddingResponse
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.gateway.cache import build_caches
from gatehouse.gateway.governance import Governance
from gatehouse.gateway.guard_stage import guard_stages
from gatehouse.gateway.observer import Observer, Observers
from gatehouse.gateway.routing.router import Router
from gatehouse.gateway.service import access_log_bodies, pipeline_stages
from gatehouse.observability import AccessLog, Metrics
from gatehouse.server import create_app

from .fakes import ConstantEmbeddings, EchoChat

MASTER = "sk-master-test-0123456789"


class FakeClock:
    def __init__(self, now: float = 1_780_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Governed:
    http: httpx.AsyncClient
    governance: Governance
    clock: FakeClock
    chat: EchoChat
    gateway: Gateway | None = None

    def sdk(self, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key, base_url="http://gatehouse/v1", http_client=self.http, max_retries=0
        )

    async def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(
            method, path, json=body, headers={"authorization": f"Bearer {MASTER}"}
        )

    async def new_key(self, **body: Any) -> str:
        response = await self.admin("POST", "/admin/keys", {"name": "test", **body})
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key


async def governed_app(
    tmp_path: Path,
    *,
    providers: Sequence[Any] = (),
    metrics: Metrics | None = None,
    access_log: AccessLog | None = None,
    **settings: Any,
) -> AsyncIterator[Governed]:
    """``providers``: models served beside ``test/echo`` and ``test/embed``;
    ``metrics``, ``access_log``: observe requests into these (``/metrics``, the log)."""
    config = Settings.model_validate(
        {
            "data_dir": tmp_path,
            "auth": {"master_key": MASTER},
            # 1 USD per prompt token and 2 per completion token: costs are round numbers.
            "pricing": {
                "models": {"test/echo": {"input_cost_per_token": 1, "output_cost_per_token": 2}}
            },
            **settings,
        }
    )
    clock = FakeClock()
    governance = Governance(config, clock=clock)
    chat = EchoChat()
    registry = ModelRegistry([chat, ConstantEmbeddings(), *providers], {"default": "test/echo"})
    router: Router | None = None
    observer: Observer | None = None
    observers: list[Observer] = [o for o in (metrics, access_log) if o is not None]
    if observers:
        observer = Observers(observers)
        router = Router(registry, config.router, observer=observer)
    # In build_gateway's order (the same function), without the caches unless
    # the test configures them: the tests count calls that a cache would answer.
    caches = build_caches(config.cache, _no_embeddings) if "cache" in settings else None
    stages = pipeline_stages(
        governance,
        observer=observer,
        guard=guard_stages(config.guard, config.aliases, stored=governance.guard_policies),
        caches=caches,
        bodies=access_log_bodies(config),
    )
    gateway = Gateway(registry, started_at=0, stages=stages, router=router, governance=governance)
    app = create_app(config, gateway=gateway, metrics=metrics)
    await gateway.start()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
            yield Governed(http, governance, clock, chat, gateway)
    finally:
        await gateway.stop()


async def _no_embeddings(request: EmbeddingRequest) -> EmbeddingResponse:
    raise AssertionError("these tests configure no semantic cache")
