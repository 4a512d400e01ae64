"""What a gateway costs on the hot path: gatehouse against a bare proxy and LiteLLM.

Starts, on 127.0.0.1, a trivial OpenAI-compatible upstream and in front of it
(b) a bare pass-through proxy (raw ASGI, uvicorn + uvloop + httptools, pooled
aiohttp client), (c) gatehouse (one process) and (d) the LiteLLM proxy (one
worker, installed by this script into its own virtual environment), then
measures each with the same load generator, ``wrk``:

- throughput: requests/s at 20 and 100 connections;
- latency with one connection (no queueing): p50 and p99, and what each adds
  over the upstream alone;
- streaming: time to first byte (TTFB) with one connection, and what it adds;
- the exact cache: a hit served inside gatehouse (the ASGI app called
  in-process: parse, pipeline, serialise) and over HTTP with one connection;
- optionally (``--soak SECONDS``) gatehouse's resident memory under full load.

Run:  .venv/bin/python bench/gateway_overhead.py            (about 6 minutes)
      .venv/bin/python bench/gateway_overhead.py --soak 600  (adds 10 minutes)
Needs ``wrk`` (``apt-get install -y wrk``; installed on demand when missing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from overhead_tools import (  # beside this script: run it as bench/gateway_overhead.py
    BODY,
    CACHED_BODY,
    CHAT_PATH,
    cpu_seconds,
    ensure_litellm,
    ensure_wrk,
    free_port,
    process,
    rss_kb,
    ttfb,
    wait_ready,
    wrk,
    wrk_script,
)

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable


@dataclass
class Target:
    name: str
    base_url: str
    pid: int | None = None
    rps: dict[int, float] = field(default_factory=dict)
    # CPU time (all threads) per request under load: steadier than req/s on a
    # shared machine, where another job's load takes time slices, not cycles.
    cpu_us: dict[int, float] = field(default_factory=dict)
    errors: int = 0
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    ttfb_p50_ms: float = float("nan")
    ttfb_p99_ms: float = float("nan")
    headers: dict[str, str] = field(default_factory=dict)


# -- the exact cache, inside gatehouse -------------------------------------------


def cache_hit_inside(config: Path, data_dir: Path, iterations: int) -> tuple[float, float]:
    """p50/p99 (ms) of a cache hit through the gatehouse ASGI app, called in-process."""
    from gatehouse.core.config import load_settings
    from gatehouse.server import create_app

    app = create_app(load_settings(config, overrides={"data_dir": str(data_dir)}))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": CHAT_PATH,
        "raw_path": CHAT_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(CACHED_BODY)).encode()),
        ],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }

    async def one() -> str:
        state: dict[str, str] = {}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": CACHED_BODY, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                for name, value in message["headers"]:  # type: ignore[attr-defined]
                    if name == b"x-gatehouse-cache":
                        state["cache"] = value.decode()

        await app(dict(scope), receive, send)  # type: ignore[arg-type]
        return state.get("cache", "none")

    async def run() -> list[float]:
        # Start-up and shutdown as a server would run them (the ledger's outbox
        # writer, the store, upstream pools), around the measured calls.
        async with app.router.lifespan_context(app):
            assert await one() == "miss"
            samples = []
            for _ in range(iterations):
                started = time.perf_counter()
                status = await one()
                samples.append((time.perf_counter() - started) * 1000)
                assert status == "hit", status
        return sorted(samples)

    import uvloop

    samples = uvloop.run(run())
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


# -- the run -----------------------------------------------------------------------


MASTER_KEY = "sk-bench-master"


def gatehouse_config(path: Path, upstream: str, *, cache: bool, governed: bool) -> Path:
    text = (
        "local:\n  chat: {enabled: false}\n  embeddings: {enabled: false}\n"
        f"cache:\n  enabled: {str(cache).lower()}\n  coalesce: false\n"
        "models:\n  - name: bench\n    deployments:\n"
        f"      - {{provider: openai_compat, model: bench-upstream, base_url: '{upstream}/v1',\n"
        "         input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}\n"
    )
    if governed:
        text += f"auth:\n  master_key: {MASTER_KEY}\n"
    path.write_text(text)
    return path


def virtual_key(base_url: str) -> str:
    """A virtual key with rate limits and a hard budget, all far above what the run uses,
    so every request pays for auth, admission (rpm, tpm, concurrency, budget) and
    metering without being refused."""
    response = httpx.post(
        f"{base_url}/admin/keys",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={
            "name": "bench",
            "limits": {"rpm": 1_000_000_000, "tpm": 1_000_000_000_000, "max_parallel": 10_000},
            "budget": {"max_usd": 1_000_000_000, "period": "month", "hard": True},
        },
        timeout=10,
    )
    response.raise_for_status()
    key: str = response.json()["key"]
    return key


def main() -> None:
    parser = argparse.ArgumentParser(
        description="gateway overhead: gatehouse vs bare proxy vs LiteLLM"
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--connections", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--ttfb-requests", type=int, default=300)
    parser.add_argument("--cache-iterations", type=int, default=5000)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--soak", type=float, default=0, help="seconds of full load for RSS")
    parser.add_argument(
        "--litellm-venv",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "gatehouse-bench"
        / "litellm-venv",
    )
    args = parser.parse_args()
    wrk_bin = ensure_wrk()
    litellm = None if args.skip_litellm else ensure_litellm(args.litellm_venv)

    with tempfile.TemporaryDirectory(prefix="gh-bench-") as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        ports = {
            name: free_port() for name in ("upstream", "proxy", "gatehouse", "cached", "litellm")
        }
        url = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}

        def start(name: str, argv: list[str], ready: str, env: dict[str, str] | None = None) -> int:
            log = tmp / f"{name}.log"
            pid = stack.enter_context(process(argv, log, env))
            wait_ready(ready, log, method="POST" if ready.endswith(CHAT_PATH) else "GET")
            return pid

        servers = str(HERE / "overhead_servers.py")
        upstream_pid = start(
            "upstream",
            [PYTHON, servers, "upstream", "--port", str(ports["upstream"])],
            url["upstream"] + CHAT_PATH,
        )
        proxy_pid = start(
            "proxy",
            [
                PYTHON,
                servers,
                "proxy",
                "--port",
                str(ports["proxy"]),
                "--upstream",
                url["upstream"],
            ],
            url["proxy"] + CHAT_PATH,
        )
        gatehouse = [PYTHON, "-m", "gatehouse", "--config"]
        plain_cfg = gatehouse_config(
            tmp / "gatehouse.yaml", url["upstream"], cache=False, governed=True
        )
        cached_cfg = gatehouse_config(
            tmp / "cached.yaml", url["upstream"], cache=True, governed=False
        )
        gh_pid = start(
            "gatehouse",
            [
                *gatehouse,
                str(plain_cfg),
                "--data-dir",
                str(tmp / "gh"),
                "serve",
                "--port",
                str(ports["gatehouse"]),
                "--log-level",
                "warning",
            ],
            url["gatehouse"] + "/healthz",
        )
        start(
            "cached",
            [
                *gatehouse,
                str(cached_cfg),
                "--data-dir",
                str(tmp / "ghc"),
                "serve",
                "--port",
                str(ports["cached"]),
                "--log-level",
                "warning",
            ],
            url["cached"] + "/healthz",
        )
        targets = [
            Target("upstream alone", url["upstream"], pid=upstream_pid),
            Target("bare proxy", url["proxy"], pid=proxy_pid),
            Target(
                "gatehouse",
                url["gatehouse"],
                pid=gh_pid,
                headers={"Authorization": f"Bearer {virtual_key(url['gatehouse'])}"},
            ),
        ]
        if litellm is not None:
            config = tmp / "litellm.yaml"
            config.write_text(
                "model_list:\n  - model_name: bench\n    litellm_params:\n"
                f"      model: openai/bench-upstream\n      api_base: {url['upstream']}/v1\n"
                "      api_key: sk-bench\n"
                # Its master key, the only auth LiteLLM has without its database: less
                # work per request than gatehouse's virtual key, limits and ledger.
                f"general_settings:\n  master_key: {MASTER_KEY}\n"
            )
            env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
            start(
                "litellm",
                [
                    str(litellm[0]),
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ports["litellm"]),
                    "--num_workers",
                    "1",
                ],
                url["litellm"] + "/health/liveliness",
                env,
            )
            targets.append(
                Target(
                    f"LiteLLM {litellm[1]}",
                    url["litellm"],
                    headers={"Authorization": f"Bearer {MASTER_KEY}"},
                )
            )

        for target in targets:
            print(f"measuring {target.name} ...", file=sys.stderr)
            chat = target.base_url + CHAT_PATH
            load = {"tmp": tmp, "headers": target.headers}
            wrk(wrk_bin, chat, BODY, connections=20, seconds=2, **load)  # warm-up
            for connections in args.connections:
                used = cpu_seconds(target.pid) if target.pid is not None else 0.0
                rps, errors, _, _ = wrk(
                    wrk_bin, chat, BODY, connections=connections, seconds=args.seconds, **load
                )
                target.rps[connections] = rps
                if target.pid is not None:
                    used = cpu_seconds(target.pid) - used
                    target.cpu_us[connections] = used / (rps * args.seconds) * 1e6
                target.errors += errors
            _, errors, target.p50_ms, target.p99_ms = wrk(
                wrk_bin, chat, BODY, connections=1, seconds=args.seconds, **load
            )
            target.errors += errors
            target.ttfb_p50_ms, target.ttfb_p99_ms = ttfb(
                target.base_url, args.ttfb_requests, target.headers
            )

        print("measuring the exact cache ...", file=sys.stderr)
        inside = cache_hit_inside(cached_cfg, tmp / "inproc", args.cache_iterations)
        cached_chat = url["cached"] + CHAT_PATH
        httpx.post(cached_chat, content=CACHED_BODY, headers={"content-type": "application/json"})
        _, cache_errors, hit_p50, hit_p99 = wrk(
            wrk_bin, cached_chat, CACHED_BODY, connections=1, seconds=args.seconds, tmp=tmp
        )
        soak = None
        if args.soak:
            print(f"soaking gatehouse for {args.soak:.0f} s ...", file=sys.stderr)
            soak = run_soak(wrk_bin, targets[2], args.soak, tmp)

    report(targets, args.connections, inside, (hit_p50, hit_p99, cache_errors), soak)


def run_soak(wrk_bin: str, target: Target, seconds: float, tmp: Path) -> tuple[int, int, int]:
    """(RSS after the first tenth, RSS at the end, peak) in KiB under 100-connection load."""
    assert target.pid is not None
    samples: list[int] = []
    load = subprocess.Popen(
        [
            wrk_bin,
            "-t1",
            "-c100",
            f"-d{round(seconds)}s",
            "-s",
            str(wrk_script(BODY, target.headers, tmp)),
            target.base_url + CHAT_PATH,
        ],
        stdout=subprocess.DEVNULL,
    )
    while load.poll() is None:
        samples.append(rss_kb(target.pid))
        time.sleep(5)
    warm = samples[max(1, len(samples) // 10)] if len(samples) > 1 else samples[0]
    return warm, samples[-1], max(samples)


def report(
    targets: list[Target],
    levels: list[int],
    inside: tuple[float, float],
    over_http: tuple[float, float, int],
    soak: tuple[int, int, int] | None,
) -> None:
    base = targets[0]
    head = "| target | " + " | ".join(f"req/s @{c}" for c in levels)
    head += " | p50 ms (1 conn) | p99 ms | added p50 | added p99"
    head += " | TTFB p50 ms | added TTFB p50 | errors |"
    print(f"\nmachine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end\n")
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for t in targets:
        cells = [t.name, *(f"{t.rps[c]:,.0f}" for c in levels)]
        cells += [f"{t.p50_ms:.3f}", f"{t.p99_ms:.3f}"]
        cells += [f"{t.p50_ms - base.p50_ms:+.3f}", f"{t.p99_ms - base.p99_ms:+.3f}"]
        cells += [f"{t.ttfb_p50_ms:.3f}", f"{t.ttfb_p50_ms - base.ttfb_p50_ms:+.3f}", str(t.errors)]
        print("| " + " | ".join(cells) + " |")
    by_name = {t.name: t for t in targets}
    gh, bare = by_name["gatehouse"], by_name["bare proxy"]
    litellm = next((t for t in targets if t.name.startswith("LiteLLM")), None)
    print("\nratios (throughput):")
    for c in levels:
        line = f"  @{c} connections: gatehouse / bare proxy = {gh.rps[c] / bare.rps[c]:.2f}"
        if litellm is not None:
            line += f"; gatehouse / LiteLLM = {gh.rps[c] / litellm.rps[c]:.1f}x"
        print(line)
    print("\nCPU per request under load (user + system, all threads of the process):")
    for c in levels:
        cells = [f"{t.name} {t.cpu_us[c]:.0f} us" for t in targets if c in t.cpu_us]
        line = f"  @{c} connections: " + ", ".join(cells)
        if c in gh.cpu_us and c in bare.cpu_us:
            line += f"; bare proxy / gatehouse = {bare.cpu_us[c] / gh.cpu_us[c]:.2f}"
        print(line)
    print(
        f"\nexact-cache hit inside gatehouse (in-process ASGI: parse, pipeline, serialise): "
        f"p50 {inside[0]:.3f} ms, p99 {inside[1]:.3f} ms"
    )
    print(
        f"exact-cache hit over HTTP, 1 connection: p50 {over_http[0]:.3f} ms, "
        f"p99 {over_http[1]:.3f} ms (upstream alone p50 {base.p50_ms:.3f} ms), "
        f"errors {over_http[2]}"
    )
    if soak is not None:
        warm, end, peak = soak
        print(
            f"\nsoak RSS (gatehouse, 100 connections): after warm-up {warm / 1024:.1f} MiB, "
            f"end {end / 1024:.1f} MiB ({(end - warm) / warm * 100:+.1f}%), "
            f"peak {peak / 1024:.1f} MiB"
        )
    print(
        "\ngatehouse features on: a virtual key (auth), rate limits (rpm, tpm, concurrency)"
        " and a hard budget reserved and settled per request, usage metering to the durable"
        " outbox and ledger, request validation, request ids, routing through a model group"
        " (retries, breaker, admission control), Prometheus metrics; cache and coalescing"
        " off. LiteLLM: master-key auth only (no database, so no virtual keys or spend logs)."
    )


if __name__ == "__main__":
    main()
