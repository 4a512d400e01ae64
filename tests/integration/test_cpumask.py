"""bench/cpumask/run.py: a child under the mask sees an older CPU, by CPUID and by /proc/cpuinfo.

Needs CPUID faulting (``cpuid_fault`` in the CPU flags), gcc, and the right to
make a mount namespace (root); skipped, saying which, where any is missing.
On a CPU that lacks the masked features anyway the checks still hold (they
are then not informative).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RUNNER = Path(__file__).resolve().parents[2] / "bench" / "cpumask" / "run.py"

# What the child reports: numpy's CPUID-derived features, gatehouse's view of /proc/cpuinfo.
CHILD = """
import json
import numpy as np
from gatehouse.providers.local.cpu import cpu_flags, has_amx, has_vnni, read_cpuinfo
features = np._core._multiarray_umath.__cpu_features__
text = read_cpuinfo()
print(json.dumps({
    "cpuid": {k: bool(v) for k, v in features.items()},
    "has_vnni": has_vnni(text),
    "has_amx": has_amx(text),
    "flags": sorted(cpu_flags(text)),
}))
"""


def host_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    lines = text.splitlines()
    return frozenset(next((ln.split(":")[1].split() for ln in lines if ln.startswith("flags")), []))


def start_under_mask(profile: str, cache: Path, *command: str) -> subprocess.Popen[str]:
    if "cpuid_fault" not in host_flags():
        pytest.skip("this CPU (or its hypervisor) offers no CPUID faulting (no cpuid_fault flag)")
    if shutil.which("gcc") is None or shutil.which("unshare") is None:
        pytest.skip("gcc and unshare are needed to build and run the CPU mask")
    return subprocess.Popen(
        [sys.executable, str(RUNNER), "--profile", profile, "--cache", str(cache), "--", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(
    running: subprocess.Popen[str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    try:
        out, err = running.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        # The command is the runner's grandchild (through unshare): killing the
        # runner alone would leave it running. Its own session holds both.
        os.killpg(running.pid, signal.SIGKILL)
        running.communicate()  # the pipes close once every holder is gone
        raise
    if running.returncode == 97:
        pytest.skip(f"the mask cannot be put in place here: {err.strip()}")
    return subprocess.CompletedProcess(running.args, running.returncode, out, err)


def under_mask(profile: str, cache: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return finish(start_under_mask(profile, cache, *command))


def report(profile: str, cache: Path) -> dict[str, object]:
    done = under_mask(profile, cache, sys.executable, "-c", CHILD)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_skylake_profile_keeps_avx512_and_hides_vnni_and_amx(tmp_path: Path) -> None:
    seen = report("skylake-avx512", tmp_path)
    cpuid = seen["cpuid"]
    assert isinstance(cpuid, dict)
    for feature in ("AVX512VNNI", "AVX512BF16", "AVX512FP16", "AVX512_ICL", "AVX512_SPR"):
        assert cpuid.get(feature, False) is False, feature
    # What Skylake-SP has stays as the host has it.
    assert cpuid["AVX512F"] == ("avx512f" in host_flags())
    assert cpuid["AVX512BW"] == ("avx512bw" in host_flags())
    assert seen["has_vnni"] is False
    assert seen["has_amx"] is False
    flags = seen["flags"]
    assert isinstance(flags, list)
    assert ("avx512f" in flags) == ("avx512f" in host_flags())
    assert "avx512_vnni" not in flags
    assert "avx_vnni" not in flags


def test_haswell_profile_hides_all_of_avx512(tmp_path: Path) -> None:
    seen = report("haswell", tmp_path)
    cpuid = seen["cpuid"]
    assert isinstance(cpuid, dict)
    assert not any(value for name, value in cpuid.items() if name.startswith("AVX512"))
    assert cpuid["AVX2"] == ("avx2" in host_flags())
    flags = seen["flags"]
    assert isinstance(flags, list)
    assert not any(flag.startswith("avx512") for flag in flags)
    assert seen["has_vnni"] is False


def test_a_real_crash_still_reaches_the_programs_handler(tmp_path: Path) -> None:
    # faulthandler installs its SIGSEGV handler after the mask's; a real fault must
    # reach it (the traceback) and then kill the process, not be swallowed.
    crash = "import ctypes, faulthandler; faulthandler.enable(); ctypes.string_at(0)"
    done = under_mask("skylake-avx512", tmp_path, sys.executable, "-c", crash)
    assert done.returncode == 128 + 11, (done.returncode, done.stderr)
    assert "Segmentation fault" in done.stderr
    assert "string_at" in done.stderr


def test_icelake_profile_keeps_vnni_and_hides_amx_bf16_fp16(tmp_path: Path) -> None:
    seen = report("icelake-server", tmp_path)
    cpuid = seen["cpuid"]
    assert isinstance(cpuid, dict)
    for feature in ("AVX512BF16", "AVX512FP16", "AVX512_SPR"):
        assert cpuid.get(feature, False) is False, feature
    assert cpuid["AVX512VNNI"] == ("avx512_vnni" in host_flags())
    assert seen["has_vnni"] == ("avx512_vnni" in host_flags())
    assert seen["has_amx"] is False


def start_sleeping(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """The runner with a masked ``sleep 600``, once that runs; and the sleep's pid."""
    pid_file = tmp_path / "pid"
    script = 'echo $$ > "$0.partial" && mv "$0.partial" "$0" && exec sleep 600'
    running = start_under_mask("skylake-avx512", tmp_path, "sh", "-c", script, str(pid_file))
    began = time.monotonic()
    while not pid_file.exists():  # the shim is compiled first
        if running.poll() is not None:
            done = finish(running)  # skips where the mask cannot be put in place
            pytest.fail(f"the command ended before it started: {done.returncode} {done.stderr}")
        if time.monotonic() - began > 120:  # a hang: end it all (raises TimeoutExpired)
            finish(running, timeout=0)
        time.sleep(0.05)
    return running, int(pid_file.read_text())


def assert_ended(pid: int) -> None:
    # A killed process closes its files (so our pipes) before it is a zombie:
    # for a moment after communicate() returns it may still show as running.
    deadline = time.monotonic() + 5
    while True:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except FileNotFoundError:
            state = "gone"
        if state in {"gone", "Z"} or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert state in {"gone", "Z"}, f"the masked command {pid} still runs ({state})"


def test_a_command_past_the_timeout_is_killed_with_its_runner(tmp_path: Path) -> None:
    running, command = start_sleeping(tmp_path)
    with pytest.raises(subprocess.TimeoutExpired):
        finish(running, timeout=0)
    assert_ended(command)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_runner_stops_the_command(tmp_path: Path, signum: int) -> None:
    running, command = start_sleeping(tmp_path)
    running.send_signal(signum)  # the runner alone, as a supervisor or `timeout` would
    done = finish(running, timeout=60)
    assert done.returncode == 128 + signum
    assert_ended(command)
