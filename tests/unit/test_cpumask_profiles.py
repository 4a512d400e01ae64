"""bench/cpumask/run.py's masked /proc/cpuinfo: what each profile removes and keeps.

The CPUID half is checked by running a child under the mask
(tests/integration/test_cpumask.py); this is the text half, on any machine.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from gatehouse.providers.local.cpu import cpu_flags, has_amx, has_vnni

RUNNER = Path(__file__).resolve().parents[2] / "bench" / "cpumask" / "run.py"

SAPPHIRE_RAPIDS = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512dq avx512cd avx512bw avx512vl \
avx512ifma avx512vbmi avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg \
avx512_vpopcntdq avx_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8 cpuid_fault sha_ni

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512_vnni amx_int8
"""


@pytest.fixture(scope="module")
def runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpumask_run", RUNNER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_skylake_keeps_avx512_foundation_and_drops_later_extensions(runner: ModuleType) -> None:
    masked = runner.masked_cpuinfo(SAPPHIRE_RAPIDS, "skylake-avx512")
    flags = cpu_flags(masked)
    assert {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"} <= flags
    assert {"sse4_2", "avx", "avx2", "fma", "f16c", "cpuid_fault"} <= flags
    assert not has_vnni(masked)
    assert not has_amx(masked)
    later = {"avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_bf16", "avx512_fp16", "sha_ni"}
    assert not later & flags


def test_haswell_also_drops_every_avx512_flag(runner: ModuleType) -> None:
    masked = runner.masked_cpuinfo(SAPPHIRE_RAPIDS, "haswell")
    flags = cpu_flags(masked)
    assert not {flag for flag in flags if flag.startswith("avx512")}
    assert {"avx", "avx2", "fma"} <= flags
    assert not has_vnni(masked)


def test_every_processor_is_masked_and_named(runner: ModuleType) -> None:
    masked = runner.masked_cpuinfo(SAPPHIRE_RAPIDS, "skylake-avx512")
    flag_lines = [line for line in masked.splitlines() if line.startswith("flags")]
    assert len(flag_lines) == 2
    assert all("avx512_vnni" not in line and "amx_int8" not in line for line in flag_lines)
    names = [line for line in masked.splitlines() if line.startswith("model name")]
    assert (
        names
        == ["model name\t: Intel(R) Xeon(R) Platinum 8480+ (CPUID masked: skylake-avx512)"] * 2
    )


def test_icelake_keeps_vnni_and_drops_amx_bf16_fp16(runner: ModuleType) -> None:
    masked = runner.masked_cpuinfo(SAPPHIRE_RAPIDS, "icelake-server")
    flags = cpu_flags(masked)
    assert {"avx512_vnni", "avx512vbmi", "avx512ifma", "sha_ni", "gfni"} <= flags
    assert has_vnni(masked)
    assert not has_amx(masked)
    assert not {"avx512_bf16", "avx512_fp16", "avx_vnni"} & flags


def test_a_shim_that_cannot_be_built_means_unavailable_not_a_crash(
    runner: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # gcc present without the C library's headers (installed without its
    # recommends): the integration tests skip on status 97, a traceback fails them.
    tools = tmp_path / "bin"
    tools.mkdir()
    gcc = tools / "gcc"
    gcc.write_text("#!/bin/sh\necho 'fatal error: cpuid.h: No such file' >&2\nexit 1\n")
    gcc.chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    with pytest.raises(SystemExit) as stopped:
        runner.library(tmp_path / "cache")
    assert stopped.value.code == runner.UNAVAILABLE
    assert list((tmp_path / "cache").iterdir()) == []
