"""Which CPUs get onnxruntime's exact int8 kernels: x86 without VNNI, or unknown flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.providers.local import embedding_backends
from gatehouse.providers.local.embedding_backends import u8s8_may_saturate

HASWELL = "fpu vme sse4_2 avx avx2 fma bmi2"
ZEN3 = "fpu sse4_2 avx avx2 fma sha_ni vaes"
ICE_LAKE = "avx2 avx512f avx512bw avx512_vnni"
ALDER_LAKE = "avx2 avx_vnni"


def cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    return path


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
