"""Measuring tools of ``gateway_overhead.py``: processes, wrk, time to first byte, RSS."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CHAT_PATH = "/v1/chat/completions"
MESSAGES = '"messages":[{"role":"user","content":"Hello, how are you?"}]'
BODY = ('{"model":"bench",' + MESSAGES + "}").encode()
STREAM_BODY = ('{"model":"bench","stream":true,' + MESSAGES + "}").encode()
CACHED_BODY = ('{"model":"bench","temperature":0,' + MESSAGES + "}").encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- processes ---------------------------------------------------------------


@contextlib.contextmanager
def process(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            yield proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def wait_ready(url: str, log: Path, timeout: float = 120.0, method: str = "GET") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if method == "GET":
                response = httpx.get(url, timeout=2)
            else:
                response = httpx.post(
                    url, content=BODY, headers={"content-type": "application/json"}, timeout=5
                )
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up; log:\n{log.read_text()[-3000:]}")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk from Debian ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


def ensure_litellm(venv: Path) -> tuple[Path, str]:
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        print(f"installing litellm[proxy] into {venv} (a few minutes, once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "litellm[proxy]"], check=True)
    shown = subprocess.run(
        [str(venv / "bin" / "pip"), "show", "litellm"], capture_output=True, text=True, check=True
    )
    version = re.search(r"^Version: (\S+)", shown.stdout, re.M)
    return binary, version.group(1) if version else "?"


# -- load ----------------------------------------------------------------------


def wrk_script(body: bytes, headers: dict[str, str] | None, tmp: Path) -> Path:
    """A wrk Lua script that POSTs ``body`` with JSON and the given headers."""
    headers = {"Content-Type": "application/json", **(headers or {})}
    script = tmp / f"post-{abs(hash((body, tuple(headers.items()))))}.lua"
    escaped = body.decode().replace("\\", "\\\\").replace("'", "\\'")
    script.write_text(
        "wrk.method = 'POST'\n"
        f"wrk.body = '{escaped}'\n"
        + "".join(f"wrk.headers['{name}'] = '{value}'\n" for name, value in headers.items())
    )
    return script


def wrk(
    binary: str,
    url: str,
    body: bytes,
    *,
    connections: int,
    seconds: float,
    tmp: Path,
    headers: dict[str, str] | None = None,
) -> tuple[float, int, float, float]:
    """(requests/s, non-2xx + socket errors, p50 ms, p99 ms) of one wrk run."""
    script = wrk_script(body, headers, tmp)
    out = subprocess.run(
        [
            binary,
            "-t1",
            f"-c{connections}",
            f"-d{round(seconds)}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    for kind in ("connect", "read", "write", "timeout"):
        found = re.search(rf"{kind} (\d+)", out)
        errors += int(found.group(1)) if found and "Socket errors" in out else 0
    return rps, errors, _wrk_ms(out, "50%"), _wrk_ms(out, "99%")


def _wrk_ms(out: str, pct: str) -> float:
    found = re.search(rf"^\s+{re.escape(pct)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if not found:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def ttfb(url: str, requests: int, headers: dict[str, str] | None = None) -> tuple[float, float]:
    """p50 and p99 time to first SSE byte (ms), one keep-alive connection, sequential."""
    host, port = url.removeprefix("http://").split(":")
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: {host}\r\ncontent-type: application/json\r\n"
        f"{extra}content-length: {len(STREAM_BODY)}\r\n\r\n"
    ).encode() + STREAM_BODY
    samples = []
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(requests + 20):
            started = time.perf_counter()
            sock.sendall(head)
            buffer = b""
            first = None
            while not buffer.endswith(b"0\r\n\r\n") or b"[DONE]" not in buffer:
                data = sock.recv(65536)
                if not data:
                    raise SystemExit(f"{url} closed the stream")
                buffer += data
                if first is None and b"data:" in buffer:
                    first = time.perf_counter()
            if i >= 20:  # the first 20 warm up
                samples.append(((first or time.perf_counter()) - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
