"""Upstream time, per-key series, RAG counters and multi-worker totals in /metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gatehouse.core.config import Settings
from gatehouse.core.types import ChatCompletion, ChatCompletionChunk, ChatCompletionRequest
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.observability import Metrics, multiprocess
from gatehouse.server import create_app, runner
from gatehouse.server.app import SETTINGS_ENV

from .fakes import EchoChat
from .governed import governed_app
from .rag_fakes import BagOfWords
from .test_metrics import parse, record, total
from .test_router import Clock, Scripted, ctx, group, request, router, server_error


@dataclass
class Timed(Scripted):
    """Takes ``takes`` seconds of the fake clock per call and per streamed chunk."""

    clock: Clock = field(default_factory=Clock)
    takes: float = 0.0

    async def complete(self, request: ChatCompletionRequest) -> ChatCompletion:
        self.clock.now += self.takes
        return await super().complete(request)

    async def stream(self, request: ChatCompletionRequest) -> AsyncIterator[ChatCompletionChunk]:
        self.clock.now += self.takes
        async for chunk in super().stream(request):
            self.clock.now += self.takes
            yield chunk


async def test_upstream_time_sums_the_attempts_but_not_the_backoff() -> None:
    clock = Clock()
    flaky = Timed(name="a", script=[server_error()], clock=clock, takes=0.5)
    r = router(group("g", flaky, retries=1), clock=clock)
    req = request("g")
    call = ctx(req)
    await r.complete(call, req)
    assert flaky.calls == 2
    assert len(clock.slept) == 1
    assert clock.slept[0] > 0
    assert call.upstream_seconds == 1.0  # two calls of 0.5, backoff excluded


async def test_a_streams_upstream_time_runs_to_its_last_chunk() -> None:
    clock = Clock()
    slow = Timed(name="s", clock=clock, takes=0.25)
    r = router(group("g", slow), clock=clock)
    req = request("g", stream=True)
    call = ctx(req)
    chunks = [chunk async for chunk in await r.stream(call, req)]
    # One step to open the call, one per chunk: the first in the attempt, the rest relayed.
    assert call.upstream_seconds == 0.25 * (1 + len(chunks))


def test_the_upstream_histogram_observes_only_requests_that_reached_a_deployment() -> None:
    metrics = Metrics()
    metrics.request_done(record(upstream=0.2))
    metrics.request_done(record(upstream=0.4))
    metrics.request_done(record(upstream=None, group=None, deployment=None, cache="hit"))
    samples = parse(metrics.render().decode())
    name = "gatehouse_upstream_duration_seconds"
    assert total(samples, f"{name}_count", group="m", deployment="m") == 2
    assert abs(total(samples, f"{name}_sum") - 0.6) < 1e-9
    assert total(samples, f"{name}_count") == 2


def test_per_key_series_are_opt_in_and_carry_the_key_id() -> None:
    done = record(key_id="0123456789abcdef", input_tokens=3, output_tokens=5, cost_usd=0.25)
    off = Metrics()
    off.request_done(done)
    assert b"gatehouse_key_" not in off.render()
    on = Metrics(per_key=True)
    on.request_done(done)
    on.request_done(record(key_id=None, input_tokens=7))  # the master key, a JWT: no series
    samples = parse(on.render().decode())
    key = "0123456789abcdef"
    assert total(samples, "gatehouse_key_requests_total", key=key, status="200") == 1
    assert total(samples, "gatehouse_key_requests_total") == 1
    assert total(samples, "gatehouse_key_tokens_total", key=key, type="input") == 3
    assert total(samples, "gatehouse_key_tokens_total", key=key, type="output") == 5
    assert total(samples, "gatehouse_key_cost_usd_total", key=key) == 0.25


def test_rag_counters_by_team_operation_and_mode() -> None:
    metrics = Metrics()
    rag = metrics.rag
    rag.ingested("ops", added=2, replaced=1, unchanged=3, chunks=9)
    rag.finished("ops", "ingest", 0.5, None)
    rag.queried("ops", "search", "dense")
    rag.finished("ops", "search", 0.01, None)
    rag.queried(None, "answer", "hybrid")
    rag.finished(None, "answer", 1.5, "timeout")
    samples = parse(metrics.render().decode())
    assert total(samples, "gatehouse_rag_documents_total", team="ops", result="added") == 2
    assert total(samples, "gatehouse_rag_documents_total", result="replaced") == 1
    assert total(samples, "gatehouse_rag_documents_total", result="unchanged") == 3
    assert total(samples, "gatehouse_rag_chunks_total", team="ops") == 9
    assert total(samples, "gatehouse_rag_queries_total", operation="search", mode="dense") == 1
    assert total(samples, "gatehouse_rag_queries_total", team="", operation="answer") == 1
    assert total(samples, "gatehouse_rag_errors_total", operation="answer", type="timeout") == 1
    assert total(samples, "gatehouse_rag_duration_seconds_count") == 3


WORKER = """
import sys
from gatehouse.core.observation import RequestRecord
from gatehouse.observability.metrics import Metrics
metrics = Metrics()
for index in range(int(sys.argv[1])):
    metrics.request_done(RequestRecord(
        request_id=str(index), endpoint="chat", model="m", group="m", deployment="m",
        principal=None, team="ops", status=200, error_type=None, error_code=None,
        refusal=None, seconds=0.2, ttft=None, input_tokens=2, cached_tokens=0,
        output_tokens=0, reasoning_tokens=0, cost_usd=0.5, cache=None, coalesced=False,
        retries=0, fallbacks=0, stream=False, upstream=0.1,
    ))
metrics.watch_counter("gatehouse_live", "read from this process", lambda: 1.0)
sys.stdout.buffer.write(metrics.render())
"""


def test_worker_processes_add_up_in_every_scrape(tmp_path: Path) -> None:
    """Under ``serve --workers N``, each worker's scrape reports all workers' counts."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    root = Path(__file__).parents[2]

    def worker(requests: int) -> str:
        run = [sys.executable, "-c", WORKER, str(requests)]
        done = subprocess.run(run, env=env, cwd=root, capture_output=True, check=True)
        return done.stdout.decode()

    worker(3)
    samples = parse(worker(4))  # the second worker's scrape
    assert total(samples, "gatehouse_requests_total") == 7
    assert total(samples, "gatehouse_tokens_total", team="ops", type="input") == 14
    assert total(samples, "gatehouse_cost_usd_total") == 3.5
    assert total(samples, "gatehouse_upstream_duration_seconds_count") == 7
    # What is read from a process's memory is that worker's own, labelled with it.
    ((labels, value),) = samples["gatehouse_live_total"]
    assert labels["worker"].isdigit()
    assert value == 1.0


async def test_readyz_leaves_its_verdict_in_the_metrics(tmp_path: Path) -> None:
    metrics = Metrics()
    assert b"gatehouse_ready" not in metrics.render()  # no verdict before a check
    async for gov in governed_app(tmp_path, metrics=metrics):
        assert (await gov.http.get("/readyz")).status_code == 200
        samples = parse((await gov.http.get("/metrics")).text)
    assert total(samples, "gatehouse_ready") == 1
    checks = {labels["check"]: value for labels, value in samples["gatehouse_readiness_check"]}
    assert checks["storage:data_dir"] == 1
    metrics.readiness([("sql", True), ("redis", False)])
    samples = parse(metrics.render().decode())
    assert total(samples, "gatehouse_ready") == 0
    assert total(samples, "gatehouse_readiness_check", check="redis") == 0


async def test_the_rag_routes_report_to_the_metrics(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    registry = ModelRegistry([EchoChat(), BagOfWords()], {"default": "test/echo"})
    app = create_app(settings, gateway=Gateway(registry, started_at=0))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    c = "/v1/rag/collections"
    docs = {"documents": [{"id": "a", "text": "Cats purr."}, {"id": "b", "text": "Tax is due."}]}
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
        await http.post(c, json={"name": "kb", "embedding_model": "test/bow"})
        assert (await http.post(f"{c}/kb/documents", json=docs)).status_code == 200
        assert (await http.post(f"{c}/kb/documents", json=docs)).status_code == 200
        for mode in ("dense", "keyword", "keyword"):
            body = {"query": "cats", "mode": mode}
            assert (await http.post(f"{c}/kb/search", json=body)).status_code == 200
        assert (await http.post(f"{c}/kb/answer", json={"query": "cats"})).status_code == 200
        streamed = await http.post(f"{c}/kb/answer", json={"query": "cats", "stream": True})
        assert streamed.status_code == 200
        missing = await http.post(f"{c}/nope/search", json={"query": "cats"})
        assert missing.status_code == 404
        text = (await http.get("/metrics")).text
    samples = parse(text)
    assert total(samples, "gatehouse_rag_documents_total", result="added") == 2
    assert total(samples, "gatehouse_rag_documents_total", result="unchanged") == 2
    assert total(samples, "gatehouse_rag_chunks_total") == 2
    assert total(samples, "gatehouse_rag_queries_total", operation="search", mode="keyword") == 2
    assert total(samples, "gatehouse_rag_queries_total", operation="search") == 4
    assert total(samples, "gatehouse_rag_queries_total", operation="answer", mode="hybrid") == 2
    assert total(samples, "gatehouse_rag_errors_total", operation="search") == 1
    assert total(samples, "gatehouse_rag_errors_total") == 1
    assert total(samples, "gatehouse_rag_duration_seconds_count", operation="ingest") == 2
    assert total(samples, "gatehouse_rag_duration_seconds_count", operation="answer") == 2
    assert "kb" not in {
        v for labels, _ in samples["gatehouse_rag_queries_total"] for v in labels.values()
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_starts_from_an_empty_multiprocess_directory(
    workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counts of an earlier run must not add to this one's: with several workers
    (default directory) or one and the operator's $PROMETHEUS_MULTIPROC_DIR."""
    chosen = tmp_path / "chosen" if workers == 1 else tmp_path / "data" / "prometheus"
    chosen.mkdir(parents=True)
    (chosen / "counter_1.db").write_bytes(b"an earlier run")
    monkeypatch.setenv(multiprocess.ENV, str(chosen) if workers == 1 else "")
    monkeypatch.setenv(SETTINGS_ENV, "")
    started: list[dict[str, object]] = []
    monkeypatch.setattr(runner.uvicorn, "run", lambda app, **options: started.append(options))
    monkeypatch.setattr(runner, "serve_workers", lambda app, **options: started.append(options))
    settings = Settings.model_validate(
        {
            "data_dir": tmp_path / "data",
            "local": {"chat": {"enabled": False}},
            "server": {"workers": workers},
        }
    )
    runner.serve(settings)
    assert len(started) == 1
    assert os.environ[multiprocess.ENV] == str(chosen)
    assert list(chosen.iterdir()) == []


def test_one_worker_without_the_variable_uses_no_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(multiprocess.ENV, raising=False)
    monkeypatch.setattr(runner.uvicorn, "run", lambda app, **options: None)
    data = tmp_path / "data"
    runner.serve(Settings.model_validate({"data_dir": data, "local": {"chat": {"enabled": False}}}))
    assert multiprocess.ENV not in os.environ
    assert not (data / "prometheus").exists()
