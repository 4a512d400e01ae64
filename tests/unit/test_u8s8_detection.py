"""Per CPU: which int8 kernels onnxruntime may use, and which backend ``auto`` picks."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.providers.local import embedding_backends
from gatehouse.providers.local.cpu import has_vnni
from gatehouse.providers.local.embedding_backends import (
    default_backend,
    resolve_backend,
    u8s8_may_saturate,
)

HASWELL = "fpu vme sse4_2 avx avx2 fma bmi2"
ZEN3 = "fpu sse4_2 avx avx2 fma sha_ni vaes"
SKYLAKE_XEON = "avx2 avx512f avx512bw avx512cd avx512dq avx512vl"  # AVX-512, no VNNI
ICE_LAKE = "avx2 avx512f avx512bw avx512_vnni"
ALDER_LAKE = "avx2 avx_vnni"
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 asimddp\n"


def cpuinfo_text(flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n"


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo_text(flags))
    return path


@pytest.mark.parametrize(
    ("text", "vnni"),
    [
        pytest.param(cpuinfo_text(HASWELL), False, id="haswell"),
        pytest.param(cpuinfo_text(ZEN3), False, id="zen3"),
        pytest.param(cpuinfo_text(SKYLAKE_XEON), False, id="avx512-without-vnni"),
        pytest.param(cpuinfo_text(ICE_LAKE), True, id="ice-lake"),
        pytest.param(cpuinfo_text(ALDER_LAKE), True, id="alder-lake"),
        pytest.param(cpuinfo_text("avx512_vnni_x avx512_bf16"), False, id="whole-flags-only"),
        pytest.param(ARM, False, id="arm"),
        pytest.param("", False, id="unknown"),
    ],
)
def test_vnni_is_read_from_the_flags_line(text: str, vnni: bool) -> None:
    assert has_vnni(text) is vnni


@pytest.mark.parametrize(
    ("flags", "backend"),
    [(SKYLAKE_XEON, "onnx"), (HASWELL, "onnx"), (ICE_LAKE, "onnx-int8"), (ALDER_LAKE, "onnx-int8")],
)
def test_int8_is_the_default_only_with_vnni(flags: str, backend: str) -> None:
    assert default_backend(cpuinfo_text(flags)) == backend


def test_auto_reads_the_cpu_and_an_explicit_backend_wins(tmp_path: Path) -> None:
    xeon = cpuinfo(tmp_path, SKYLAKE_XEON)
    assert resolve_backend("auto", xeon) == "onnx"
    assert resolve_backend("auto", tmp_path / "missing") == "onnx"  # unknown: fp32
    assert resolve_backend("onnx-int8", xeon) == "onnx-int8"
    assert resolve_backend("torch", xeon) == "torch"


@pytest.mark.parametrize(
    ("flags", "saturates"), [(HASWELL, True), (ZEN3, True), (ICE_LAKE, False), (ALDER_LAKE, False)]
)
def test_x86_without_vnni_saturates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: str, saturates: bool
) -> None:
    monkeypatch.setattr(embedding_backends.platform, "machine", lambda: "x86_64")
    assert u8s8_may_saturate(cpuinfo(tmp_path, flags)) is saturates


def test_unreadable_flags_on_x86_take_the_exact_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedding_backends.platform, "machine", lambda: "AMD64")
    assert u8s8_may_saturate(tmp_path / "missing") is True


def test_arm_never_saturates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedding_backends.platform, "machine", lambda: "aarch64")
    assert u8s8_may_saturate(tmp_path / "missing") is False
