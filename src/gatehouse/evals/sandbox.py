"""Running model-written Python in a subprocess with a timeout and resource limits.

The code runs in a fresh interpreter (``python -I -S``: no site-packages, no
``PYTHON*`` variables, no user site), in an empty temporary directory that is
its home and its ``TMPDIR``, with an environment of a few variables and dead
proxy settings. Before the code starts, the child sets its own limits with
``resource.setrlimit`` (CPU seconds, address space, file size, open files,
no new processes; root ignores the last) and replaces the functions that
connect sockets or start processes with ones that refuse.
Where ``unshare -rn`` works (Linux with user namespaces), the child also runs
in an empty network namespace, so not even a raw syscall reaches a network.
The wall-clock timeout kills the child's whole process group.

This keeps a wrong or runaway answer (an endless loop, a memory blow-up, a
fork bomb, a stray download) from hurting the machine or the evaluation. It
is not a security boundary against code written to escape it: run untrusted
models' code on a machine you can lose, or in a container.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

OUTPUT_LIMIT = 4000

# Runs first in the child: limits, then no sockets, then the code as __main__.
_RUNNER = """
import resource, runpy, socket, sys
cpu, memory, files = int(sys.argv[2]), int(sys.argv[3]), 1 << 20
for limit, value in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_AS, memory),
                     (resource.RLIMIT_FSIZE, files), (resource.RLIMIT_NOFILE, 32),
                     (resource.RLIMIT_NPROC, 0), (resource.RLIMIT_CORE, 0)):
    try:
        resource.setrlimit(limit, (value, value))
    except (ValueError, OSError):
        pass
import os, _posixsubprocess
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")
def _no_process(*args, **kwargs):
    raise OSError("new processes are disabled in the sandbox")
for name in ("connect", "connect_ex", "bind", "sendto"):
    setattr(socket.socket, name, _no_network)
socket.create_connection = socket.getaddrinfo = _no_network
for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
    setattr(os, name, _no_process)
_posixsubprocess.fork_exec = _no_process
del os, _posixsubprocess
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@dataclass(frozen=True, slots=True)
class Limits:
    timeout: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 512


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """How the code ended: exit code (``None`` when killed at the timeout) and its output."""

    exit_code: int | None
    timed_out: bool
    output: str
    network: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


@functools.cache
def network_isolation() -> str:
    """``"namespace"`` when ``unshare -rn`` works here, else ``"socket-patch"``."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "socket-patch"
    try:
        probe = subprocess.run(
            [unshare, "-rn", "true"], capture_output=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "socket-patch"
    return "namespace" if probe.returncode == 0 else "socket-patch"


async def run_python(code: str, limits: Limits | None = None) -> SandboxResult:
    """Run ``code`` as a script in the sandbox; stdout and stderr are returned together."""
    limits = limits or Limits()
    isolation = network_isolation()
    with tempfile.TemporaryDirectory(prefix="gatehouse-sandbox-") as home:
        script = Path(home) / "main.py"
        script.write_text(code, encoding="utf-8")
        command = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _RUNNER,
            str(script),
            str(limits.cpu_seconds),
            str(limits.memory_mb * 1024 * 1024),
        ]
        if isolation == "namespace":
            command = ["unshare", "-rn", *command]
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=home,
            env=_environment(home),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = await asyncio.wait_for(process.communicate(), limits.timeout)
        except TimeoutError:
            _kill_group(process.pid)
            output, _ = await process.communicate()
            return SandboxResult(None, True, _tail(output), isolation)
        finally:
            if process.returncode is None:
                _kill_group(process.pid)
                await process.wait()
        return SandboxResult(process.returncode, False, _tail(output), isolation)


def _environment(home: str) -> dict[str, str]:
    dead = "http://127.0.0.1:9"
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "TMPDIR": home,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "http_proxy": dead,
        "https_proxy": dead,
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "no_proxy": "",
    }


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _tail(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace")
    return text if len(text) <= OUTPUT_LIMIT else "..." + text[-OUTPUT_LIMIT:]
