"""What the CPU offers, read from ``/proc/cpuinfo``: the in-process models pick
their kernels by it, since CI and users run on x86 CPUs of every generation.

Text without a flags line (an unreadable file, another OS, ARM) has no flags.
"""

from __future__ import annotations

from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
AMX_FLAGS = frozenset({"amx_int8", "amx_bf16", "amx_tile"})


def cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The flags of the first processor listed in the text of ``/proc/cpuinfo``."""
    lines = cpuinfo.splitlines()
    return frozenset(
        next((line.partition(":")[2].split() for line in lines if line.startswith("flags")), [])
    )


def has_vnni(cpuinfo: str) -> bool:
    """Whether the text of ``/proc/cpuinfo`` lists VNNI (AVX-512 VNNI or AVX-VNNI)."""
    return not VNNI_FLAGS.isdisjoint(cpu_flags(cpuinfo))


def has_amx(cpuinfo: str) -> bool:
    """Whether the text of ``/proc/cpuinfo`` lists AMX (Intel Sapphire Rapids and later)."""
    return not AMX_FLAGS.isdisjoint(cpu_flags(cpuinfo))


def has_amx_bf16(cpuinfo: str) -> bool:
    """Whether the text of ``/proc/cpuinfo`` lists AMX's bf16 products, which
    OpenVINO runs what it leaves in floating point on."""
    return "amx_bf16" in cpu_flags(cpuinfo)


def read_cpuinfo(path: Path = CPUINFO) -> str:
    """The text of ``path``, or ``""`` where it cannot be read."""
    try:
        return path.read_text()
    except OSError:
        return ""
