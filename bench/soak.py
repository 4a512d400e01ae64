"""Soak: one gatehouse process under mixed traffic for a long run (issue 20).

Starts the fast upstream of ``overhead_servers.py`` and one ``gatehouse serve``
process in front of it, with governance on (a master key; a virtual key with
rate limits and a hard budget far above what the run uses), the local models
(``local/minilm`` embeddings, ``local/smollm2`` chat, sparingly: it is slow on
two cores) and a RAG collection embedded with MiniLM that answers with the
upstream model. A few concurrent async clients then send, for ``--minutes``:

- chat completions and streamed chat completions (the upstream model);
- embeddings (``local/minilm``) and, every ``--local-chat-seconds``, a short
  ``local/smollm2`` completion;
- RAG: a document replaced (a bounded set of ids, new text each time), a
  search, an answer, a streamed answer;
- admin calls as the master key: a key created, listed, revoked; the request
  log (``/admin/requests``) and spend (``/admin/spend``).

The server's resident memory (RSS) and open file descriptors are sampled from
``/proc/<pid>`` every ``--sample-seconds``. The first ``--warmup`` fraction of
the run is warm-up (models loaded, pools and caches filled); the baseline is the
median of the window right after it, the end the median of the last window
(each ``--window`` of the run). The verdicts are issue 20's thresholds: memory
growth from baseline to end at most 10%, no file-descriptor growth beyond
``--fd-slack`` (connections in flight come and go), and no error at all (no
faults are injected here); also no traceback in the server's log. The exit
status is 1 when a threshold is broken.

To find what grows, ``--tracemalloc DIR`` has the server start tracemalloc
when the warm-up ends and dump a snapshot into DIR after the traffic (both on
SIGUSR2), then prints the lines whose allocations made since the warm-up are
still alive, most first: what grew (native memory, such as ONNX Runtime's or
llama.cpp's, is not seen). Tracing slows the server and adds to its RSS: the
verdicts of such a run are not the figures of an untraced one.

    .venv/bin/python bench/soak.py                 (30 minutes)
    .venv/bin/python bench/soak.py --minutes 2     (a smoke run)
    .venv/bin/python bench/soak.py --minutes 10 --tracemalloc /tmp/snaps
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from gateway_overhead import MASTER_KEY  # beside this script: run it as bench/soak.py
from overhead_tools import CHAT_PATH, free_port, process, rss_kb, wait_ready

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
COLLECTION = "soak"
DOC_IDS = 50  # documents are replaced in turn: the collection stays this size
WORDS = [
    "gateway",
    "routes",
    "every",
    "model",
    "call",
    "through",
    "admission",
    "budgets",
    "limits",
    "ledger",
    "retries",
    "fallbacks",
    "breakers",
    "streaming",
    "embeddings",
    "retrieval",
    "chunks",
    "citations",
    "keys",
    "teams",
    "spend",
]


# The server, traceable: ``python -c TRACED DIR <gatehouse args>``; the first
# SIGUSR2 starts tracemalloc (and writes DIR/tracing), the next dumps DIR/snap.bin.
TRACED = """
import pathlib, signal, sys, tracemalloc
where = pathlib.Path(sys.argv.pop(1))
def on_signal(*_):
    if tracemalloc.is_tracing():
        tracemalloc.take_snapshot().dump(str(where / "snap.bin"))
    else:
        tracemalloc.start(10)
        (where / "tracing").write_text("on")
signal.signal(signal.SIGUSR2, on_signal)
from gatehouse.cli.main import main
raise SystemExit(main())
"""


def signal_traced(pid: int, path: Path, timeout: float = 300) -> Path:
    """SIGUSR2 to the traced server; wait until ``path`` is written in full."""
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR2)
    deadline = time.monotonic() + timeout
    size = -1
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size == size > 0:
            return path
        size = path.stat().st_size if path.exists() else -1
        time.sleep(1)
    raise SystemExit(f"the server did not write {path}")


def growth_report(path: Path, top: int = 20) -> None:
    stats = tracemalloc.Snapshot.load(str(path)).statistics("lineno")
    total = sum(stat.size for stat in stats)
    print(
        f"\ntracemalloc: {total / 1024:,.0f} KiB allocated after the warm-up still alive at "
        f"the end; the {top} largest lines:"
    )
    for stat in stats[:top]:
        print(f"  {stat.size / 1024:9.1f} KiB {stat.count:7d} blocks  {stat.traceback}")


def soak_config(path: Path, upstream: str) -> Path:
    path.write_text(
        f"auth:\n  master_key: {MASTER_KEY}\n"
        "rag:\n  answer_model: bench\n"
        "models:\n  - name: bench\n    deployments:\n"
        f"      - {{provider: openai_compat, model: bench-upstream, base_url: '{upstream}/v1',\n"
        "         input_cost_per_token: 0.000001, output_cost_per_token: 0.000002}\n"
    )
    return path


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Sample:
    at: float  # seconds since the traffic started
    rss_kb: int
    fds: int


@dataclass
class Tally:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # "kind: what"
    samples: list[Sample] = field(default_factory=list)


class Traffic:
    """The clients: each ``kind`` is a loop of calls until the deadline."""

    def __init__(self, base_url: str, key: str, tally: Tally, deadline: float, think: float):
        self.base_url = base_url
        self.tally = tally
        self.deadline = deadline
        self.think = think
        self.n = 0
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
        self.user = httpx.AsyncClient(
            base_url=base_url,
            headers={"authorization": f"Bearer {key}"},
            limits=limits,
            timeout=120,
        )
        self.admin = httpx.AsyncClient(
            base_url=base_url,
            headers={"authorization": f"Bearer {MASTER_KEY}"},
            limits=limits,
            timeout=120,
        )

    async def close(self) -> None:
        await self.user.aclose()
        await self.admin.aclose()

    def text(self, words: int = 12) -> str:
        self.n += 1
        picked = [WORDS[(self.n * 7 + i * 3) % len(WORDS)] for i in range(words)]
        return f"{self.n} " + " ".join(picked)

    async def loop(
        self, kind: str, step: Callable[[], Awaitable[None]], pause: float | None = None
    ) -> None:
        while time.monotonic() < self.deadline:
            try:
                await step()
            except (httpx.HTTPError, AssertionError, ValueError) as exc:
                self.tally.errors[f"{kind}: {type(exc).__name__} {str(exc)[:80]}"] += 1
            left = self.deadline - time.monotonic()
            await asyncio.sleep(max(0.0, min(self.think if pause is None else pause, left)))

    async def call(
        self,
        kind: str,
        client: httpx.AsyncClient,
        method: str,
        path: str,
        body: object = None,
        expect: int = 200,
    ) -> dict[str, object]:
        self.tally.requests[kind] += 1
        response = await client.request(method, path, json=body)
        if response.status_code != expect:
            self.tally.errors[f"{kind}: {response.status_code} {response.text[:80]}"] += 1
            return {}
        data: dict[str, object] = response.json()
        return data

    async def stream(self, kind: str, path: str, body: object) -> None:
        self.tally.requests[kind] += 1
        async with self.user.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                self.tally.errors[f"{kind}: {response.status_code} {response.text[:80]}"] += 1
                return
            events = [line async for line in response.aiter_lines() if line.startswith("data:")]
        failed = [e for e in events if b'"error"' in e.encode()]
        if failed or not events:
            self.tally.errors[f"{kind}: bad stream {(failed or ['no events'])[0][:80]}"] += 1

    # -- the kinds of traffic ------------------------------------------------------

    async def chat(self) -> None:
        body = {"model": "bench", "messages": [{"role": "user", "content": self.text()}]}
        data = await self.call("chat", self.user, "POST", CHAT_PATH, body)
        assert not data or data["choices"], data

    async def chat_stream(self) -> None:
        body = {
            "model": "bench",
            "stream": True,
            "messages": [{"role": "user", "content": self.text()}],
        }
        await self.stream("chat stream", CHAT_PATH, body)

    async def embeddings(self) -> None:
        body = {"model": "local/minilm", "input": [self.text(20) for _ in range(4)]}
        data = await self.call("embeddings", self.user, "POST", "/v1/embeddings", body)
        assert not data or len(data["data"]) == 4, data  # type: ignore[arg-type]

    async def local_chat(self) -> None:
        body = {
            "model": "local/smollm2",
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "Say hello."}],
        }
        await self.call("local chat", self.user, "POST", CHAT_PATH, body)

    async def rag(self) -> None:
        base = f"/v1/rag/collections/{COLLECTION}"
        document = {
            "id": f"doc-{self.n % DOC_IDS}",
            "text": " ".join(self.text() for _ in range(8)),
        }
        await self.call(
            "rag ingest", self.user, "POST", base + "/documents", {"documents": [document]}
        )
        query = self.text(6)
        data = await self.call("rag search", self.user, "POST", base + "/search", {"query": query})
        assert not data or data["results"], data
        data = await self.call(
            "rag answer", self.user, "POST", base + "/answer", {"query": query, "max_tokens": 32}
        )
        assert not data or data.get("answer"), data
        await self.stream("rag answer stream", base + "/answer", {"query": query, "stream": True})

    async def admin_calls(self) -> None:
        created = await self.call(
            "admin", self.admin, "POST", "/admin/keys", {"name": f"soak-{self.n}"}, expect=201
        )
        await self.call("admin", self.admin, "GET", "/admin/keys")
        if created:
            await self.call("admin", self.admin, "DELETE", f"/admin/keys/{created['id']}")
        await self.call("admin", self.admin, "GET", "/admin/requests?limit=50")
        await self.call("admin", self.admin, "GET", "/admin/spend?group_by=key")


async def sample(
    pid: int, tally: Tally, started: float, args: argparse.Namespace, snapshots: Path | None
) -> None:
    deadline = started + args.minutes * 60
    warm_end = started + args.minutes * 60 * args.warmup
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # the process may be gone: the run reports it
            tally.samples.append(Sample(time.monotonic() - started, rss_kb(pid), fd_count(pid)))
        if snapshots is not None and time.monotonic() >= warm_end:
            await asyncio.to_thread(signal_traced, pid, snapshots / "tracing")
            snapshots = None
        await asyncio.sleep(max(0.0, min(args.sample_seconds, deadline - time.monotonic())))


async def run_traffic(
    base_url: str, key: str, pid: int, args: argparse.Namespace, tally: Tally
) -> float:
    started = time.monotonic()
    deadline = started + args.minutes * 60
    traffic = Traffic(base_url, key, tally, deadline, args.think_ms / 1000)
    t = traffic
    loops = [
        *(t.loop("chat", t.chat) for _ in range(args.chat_clients)),
        *(t.loop("chat stream", t.chat_stream) for _ in range(args.chat_clients)),
        t.loop("embeddings", t.embeddings),
        t.loop("rag", t.rag),
        t.loop("admin", t.admin_calls, pause=args.admin_pause),
        t.loop("local chat", t.local_chat, pause=args.local_chat_seconds),
        sample(pid, tally, started, args, args.tracemalloc),
    ]
    try:
        await asyncio.gather(*loops)
    finally:
        await traffic.close()
    return time.monotonic() - started


def setup(base_url: str) -> str:
    """The virtual key the clients use, and the collection with its first document."""
    response = httpx.post(
        f"{base_url}/admin/keys",
        headers={"authorization": f"Bearer {MASTER_KEY}"},
        json={
            "name": "soak",
            "scopes": ["chat", "embeddings", "rag:read", "rag:write"],
            "limits": {"rpm": 10**9, "tpm": 10**12, "max_parallel": 10**4},
            "budget": {"max_usd": 10**9, "period": "month", "hard": True},
        },
        timeout=30,
    )
    response.raise_for_status()
    key: str = response.json()["key"]
    headers = {"authorization": f"Bearer {key}"}
    base = f"{base_url}/v1/rag/collections"
    response = httpx.post(base, headers=headers, json={"name": COLLECTION}, timeout=120)
    response.raise_for_status()
    document = {"id": "doc-0", "text": " ".join(WORDS)}
    response = httpx.post(
        f"{base}/{COLLECTION}/documents",
        headers=headers,
        json={"documents": [document]},
        timeout=300,
    )
    response.raise_for_status()
    return key


@dataclass
class Verdicts:
    baseline_kb: int
    end_kb: int
    peak_kb: int
    growth_pct: float
    fds_baseline: int
    fds_end: int
    fds_peak: int
    memory_ok: bool
    fds_ok: bool
    errors_ok: bool


def judge(tally: Tally, args: argparse.Namespace, tracebacks: int) -> Verdicts:
    samples, total = tally.samples, args.minutes * 60
    warm_end = total * args.warmup
    window = max(total * args.window, args.sample_seconds * 3)
    base = [s for s in samples if warm_end <= s.at < warm_end + window] or samples[:1]
    end = [s for s in samples if s.at >= total - window] or samples[-1:]
    baseline_kb = int(statistics.median(s.rss_kb for s in base))
    end_kb = int(statistics.median(s.rss_kb for s in end))
    peak_kb = max(s.rss_kb for s in samples if s.at >= warm_end) if len(samples) > 1 else end_kb
    growth = (end_kb - baseline_kb) / baseline_kb * 100
    fds_baseline = int(statistics.median(s.fds for s in base))
    fds_end = int(statistics.median(s.fds for s in end))
    return Verdicts(
        baseline_kb=baseline_kb,
        end_kb=end_kb,
        peak_kb=peak_kb,
        growth_pct=growth,
        fds_baseline=fds_baseline,
        fds_end=fds_end,
        fds_peak=max(s.fds for s in samples),
        memory_ok=growth <= args.max_growth_pct,
        fds_ok=fds_end - fds_baseline <= args.fd_slack,
        errors_ok=not tally.errors and tracebacks == 0,
    )


def report(tally: Tally, v: Verdicts, elapsed: float, tracebacks: int, fds_idle: int) -> None:
    def mib(kb: int) -> str:
        return f"{kb / 1024:.1f} MiB"

    def verdict(ok: bool) -> str:
        return "pass" if ok else "FAIL"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    print(
        f"\nmachine: {cpu}, {os.cpu_count()} cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (shared with other work)\n"
    )
    print("| kind | requests |")
    print("| --- | --- |")
    for kind, n in sorted(tally.requests.items()):
        print(f"| {kind} | {n:,} |")
    print(f"| **all** | {sum(tally.requests.values()):,} |\n")
    print("| measure | value | threshold | verdict |")
    print("| --- | --- | --- | --- |")
    print(f"| duration | {elapsed / 60:.1f} min | | |")
    print(
        f"| RSS baseline / peak / end | {mib(v.baseline_kb)} / {mib(v.peak_kb)} / "
        f"{mib(v.end_kb)} | | |"
    )
    print(
        f"| RSS growth, baseline to end | {v.growth_pct:+.1f}% | <= 10% | {verdict(v.memory_ok)} |"
    )
    print(
        f"| open FDs baseline / end (peak; idle after) | {v.fds_baseline} / {v.fds_end} "
        f"({v.fds_peak}; {fds_idle}) | no growth | {verdict(v.fds_ok)} |"
    )
    errors = sum(tally.errors.values())
    print(
        f"| errors (tracebacks in the log) | {errors} ({tracebacks}) | 0 | {verdict(v.errors_ok)} |"
    )
    for what, n in tally.errors.most_common(20):
        print(f"  {n} x {what}")
    print("\nRSS and FDs over the run (MiB, FDs), one sample per tenth:")
    step = max(1, len(tally.samples) // 10)
    print(
        "  "
        + "  ".join(
            f"{s.at / 60:.1f}m {s.rss_kb / 1024:.0f}/{s.fds}" for s in tally.samples[::step]
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=0.1, help="fraction of the run")
    parser.add_argument("--window", type=float, default=0.05, help="fraction of the run")
    parser.add_argument("--sample-seconds", type=float, default=3)
    parser.add_argument("--chat-clients", type=int, default=2, help="each: chat and stream")
    parser.add_argument("--think-ms", type=float, default=5, help="pause between calls")
    parser.add_argument("--admin-pause", type=float, default=1.0, help="seconds between rounds")
    parser.add_argument("--local-chat-seconds", type=float, default=20)
    parser.add_argument("--max-growth-pct", type=float, default=10)
    parser.add_argument("--fd-slack", type=int, default=8, help="connections in flight")
    parser.add_argument("--keep-log", type=Path, help="copy the server's log here")
    parser.add_argument("--tracemalloc", type=Path, help="snapshot directory (see above)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gh-soak-") as tmpdir, contextlib.ExitStack() as stack:
        tmp = Path(tmpdir)
        upstream_port, port = free_port(), free_port()
        upstream, base_url = f"http://127.0.0.1:{upstream_port}", f"http://127.0.0.1:{port}"
        servers = str(HERE / "overhead_servers.py")
        up_log = tmp / "upstream.log"
        stack.enter_context(
            process([PYTHON, servers, "upstream", "--port", str(upstream_port)], up_log)
        )
        wait_ready(upstream + CHAT_PATH, up_log, method="POST")
        log = tmp / "gatehouse.log"
        argv = [PYTHON, "-m", "gatehouse"]
        if args.tracemalloc:
            args.tracemalloc.mkdir(parents=True, exist_ok=True)
            argv = [PYTHON, "-c", TRACED, str(args.tracemalloc)]
        argv += ["--config", str(soak_config(tmp / "g.yaml", upstream))]
        argv += ["--data-dir", str(tmp / "data"), "serve", "--port", str(port)]
        pid = stack.enter_context(process([*argv, "--log-level", "warning"], log))
        wait_ready(base_url + "/healthz", log, timeout=300)  # models load on a busy machine
        print(f"gatehouse pid {pid} on {base_url}; setting up ...", file=sys.stderr)
        key = setup(base_url)
        print(f"traffic for {args.minutes:g} minutes ...", file=sys.stderr)
        tally = Tally()
        elapsed = asyncio.run(run_traffic(base_url, key, pid, args, tally))
        time.sleep(3)  # the clients' connections are closed: what stays open is the server's
        alive = Path(f"/proc/{pid}").exists()
        if alive and args.tracemalloc:
            traced = signal_traced(pid, args.tracemalloc / "snap.bin")
        fds_idle = fd_count(pid) if alive else -1
        text = log.read_text(errors="replace")
        if args.keep_log:
            args.keep_log.write_text(text)
        tracebacks = text.count("Traceback")
    if not alive or not tally.samples:
        print("the gatehouse process died during the run", file=sys.stderr)
        return 1
    verdicts = judge(tally, args, tracebacks)
    report(tally, verdicts, elapsed, tracebacks, fds_idle)
    if args.tracemalloc:
        growth_report(traced)
    return 0 if verdicts.memory_ok and verdicts.fds_ok and verdicts.errors_ok else 1


if __name__ == "__main__":
    sys.exit(main())
