"""Run a command as if on an older x86 CPU: CPUID and /proc/cpuinfo both masked.

    .venv/bin/python bench/cpumask/run.py --profile skylake-avx512 -- <command...>

Profiles: ``icelake-server`` (AVX-512 with VNNI, VBMI, IFMA...; no AMX, BF16
or FP16: a CPU with VNNI but without AMX), ``skylake-avx512`` (AVX-512
F/DQ/CD/BW/VL and nothing later: no VNNI, BF16, FP16, AMX, VBMI, IFMA...;
the Xeon of issue 12) and ``haswell`` (AVX2 and FMA, no AVX-512 either).
Native speed, no emulator, so the figures are those of the code path a CPU
of that kind takes, run on this machine's cores (not that CPU's clocks,
caches or port layout).

Two masks, one per way software asks:

- CPUID, which numpy, PyTorch, oneDNN and ONNX Runtime read to pick their
  kernels: ``cpumask.c`` (compiled here on first use, cached) is loaded with
  ``LD_PRELOAD``; it turns on Linux's CPUID faulting and answers each CPUID
  with the profile's bits cleared. Needs ``cpuid_fault`` in the CPU flags.
- ``/proc/cpuinfo``, which gatehouse reads (``providers/local/cpu.py``): the
  command runs in a private mount namespace (``unshare -m``, needs root or
  CAP_SYS_ADMIN) with a masked copy bind-mounted over it, its model name
  suffixed with the profile.

glibc's own string functions, picked by the dynamic loader before any
preloaded library runs, are trimmed with ``GLIBC_TUNABLES``. The runner exits
with status 97 and a message when either mask cannot be put in place: a
measurement that silently ran unmasked would be wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("cpumask.c")
UNAVAILABLE = 97

# /proc/cpuinfo flags each profile removes, matching the CPUID bits cpumask.c clears.
_NOT_ON_ICELAKE = frozenset(
    {
        "avx512pf",
        "avx512er",
        "avx512_4vnniw",
        "avx512_4fmaps",
        "avx512_vp2intersect",
        "amx_bf16",
        "avx512_fp16",
        "amx_tile",
        "amx_int8",
        # leaf 7 subleaf 1 and later leaves: cleared whole
        "avx_vnni",
        "avx512_bf16",
        "amx_fp16",
        "avx_ifma",
        "avx_vnni_int8",
        "avx_ne_convert",
        "amx_complex",
        "avx_vnni_int16",
        "prefetchi",
        "avx10",
        "apx",
    }
)
_ICELAKE = frozenset(
    {
        "avx512ifma",
        "sha_ni",
        "avx512vbmi",
        "avx512_vbmi2",
        "gfni",
        "vaes",
        "vpclmulqdq",
        "avx512_vnni",
        "avx512_bitalg",
        "avx512_vpopcntdq",
    }
)
_AVX512 = frozenset({"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"})
PROFILES: dict[str, frozenset[str]] = {
    "icelake-server": _NOT_ON_ICELAKE,
    "skylake-avx512": _NOT_ON_ICELAKE | _ICELAKE,
    "haswell": _NOT_ON_ICELAKE | _ICELAKE | _AVX512,
}
# glibc's hwcaps names for what the loader may already have picked by.
GLIBC_TUNABLES = {
    "icelake-server": "",
    "skylake-avx512": "",
    "haswell": "glibc.cpu.hwcaps=-AVX512F,-AVX512DQ,-AVX512CD,-AVX512BW,-AVX512VL",
}


def cpu_flags(cpuinfo: str) -> list[str]:
    """The flags of the first processor in the text of ``/proc/cpuinfo``."""
    lines = cpuinfo.splitlines()
    return next((line.partition(":")[2].split() for line in lines if line.startswith("flags")), [])


def masked_cpuinfo(text: str, profile: str) -> str:
    """``/proc/cpuinfo`` text with the profile's flags removed and its name in the model name."""
    removed = PROFILES[profile]
    lines = []
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "flags":
            line = f"{key}: " + " ".join(f for f in value.split() if f not in removed)
        elif sep and key.strip() == "model name":
            line = f"{key}: {value.strip()} (CPUID masked: {profile})"
        lines.append(line)
    return "\n".join(lines) + "\n"


def library(cache: Path) -> Path:
    """``cpumask.c`` compiled into ``cache`` (once per version of the source)."""
    source = SOURCE.read_bytes()
    target = cache / f"cpumask-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if not target.exists():
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                ["gcc", "-O2", "-shared", "-fPIC", "-o", str(partial), str(SOURCE), "-ldl"],
                check=True,
            )
            partial.replace(target)
        except (OSError, subprocess.CalledProcessError) as exc:
            # gcc without the C library's headers, say, or an unwritable cache.
            partial.unlink(missing_ok=True)
            unavailable(f"cannot build {SOURCE.name}: {exc}")
    return target


def unavailable(why: str) -> None:
    print(f"bench/cpumask/run.py: cannot mask the CPU here: {why}", file=sys.stderr)
    sys.exit(UNAVAILABLE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, choices=sorted(PROFILES))
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "gatehouse",
        help="where the compiled library is kept (default: ~/.cache/gatehouse)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- command [args...]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (after --)")
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if "cpuid_fault" not in cpu_flags(cpuinfo):
        unavailable("/proc/cpuinfo does not list cpuid_fault (no CPUID faulting)")
    if shutil.which("gcc") is None or shutil.which("unshare") is None:
        unavailable("gcc and unshare (util-linux) are needed")
    so = library(args.cache / "cpumask")
    with tempfile.TemporaryDirectory(prefix="cpumask-") as folder:
        fake = Path(folder) / "cpuinfo"
        fake.write_text(masked_cpuinfo(cpuinfo, args.profile))
        mount = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /proc/cpuinfo', str(fake)]
        if subprocess.run(mount, capture_output=True).returncode != 0:
            unavailable("no private mount namespace with /proc/cpuinfo bind-mounted (not root?)")
        env = dict(os.environ)
        env["CPUMASK_PROFILE"] = args.profile
        env["CPUMASK_PRELOAD"] = " ".join(p for p in (str(so), env.get("LD_PRELOAD", "")) if p)
        tunables = GLIBC_TUNABLES[args.profile]
        if tunables:
            env["GLIBC_TUNABLES"] = ":".join(p for p in (tunables, env.get("GLIBC_TUNABLES")) if p)
        # The library is preloaded into the command only: unshare, sh and mount run unmasked.
        script = (
            'mount --bind "$0" /proc/cpuinfo && export LD_PRELOAD="$CPUMASK_PRELOAD" && exec "$@"'
        )
        child = subprocess.Popen(
            ["unshare", "-m", "sh", "-c", script, str(fake), *command], env=env
        )

        def forward(signum: int, _frame: object) -> None:
            child.send_signal(signum)

        # Stopping the runner stops the command. A terminal's Ctrl-C reaches
        # both (it is not in a process group of its own), twice is harmless; an
        # interrupt sent to the runner alone must reach it too.
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, forward)
        status = child.wait()
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main()
