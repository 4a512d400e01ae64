"""Which backend ``auto`` picks once OpenVINO is a choice: with the package,
bf16 on AMX-BF16 and int8 on VNNI; without it, ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.providers.local import embedding_backends
from gatehouse.providers.local.embedding_backends import default_backend, resolve_backend

SAPPHIRE_RAPIDS = "avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8"
ICE_LAKE = "avx2 avx512f avx512bw avx512_vnni"
COOPER_LAKE = "avx2 avx512f avx512bw avx512_vnni avx512_bf16"  # bf16 without AMX: unmeasured
SKYLAKE_XEON = "avx2 avx512f avx512bw avx512cd avx512dq avx512vl"


def cpuinfo_text(flags: str) -> str:
    return f"processor\t: 0\nmodel name\t: a CPU\nflags\t\t: {flags}\n"


@pytest.mark.parametrize(
    ("flags", "installed", "backend"),
    [
        (SAPPHIRE_RAPIDS, True, "openvino"),
        (SAPPHIRE_RAPIDS, False, "onnx-int8"),
        (COOPER_LAKE, True, "openvino-int8"),
        (ICE_LAKE, True, "openvino-int8"),
        (ICE_LAKE, False, "onnx-int8"),
        (SKYLAKE_XEON, True, "onnx"),
        (SKYLAKE_XEON, False, "onnx"),
        ("", True, "onnx"),
    ],
)
def test_openvino_only_with_the_package_and_amx_bf16_or_vnni(
    flags: str, installed: bool, backend: str
) -> None:
    assert default_backend(cpuinfo_text(flags), openvino=installed) == backend


def test_auto_asks_whether_openvino_is_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo_text(SAPPHIRE_RAPIDS))
    monkeypatch.setattr(embedding_backends, "openvino_installed", lambda: True)
    assert resolve_backend("auto", path) == "openvino"
    assert resolve_backend("onnx", path) == "onnx"  # an explicit backend still wins
    monkeypatch.setattr(embedding_backends, "openvino_installed", lambda: False)
    assert resolve_backend("auto", path) == "onnx-int8"
    path.write_text(cpuinfo_text(ICE_LAKE))
    assert resolve_backend("auto", path) == "onnx-int8"
    monkeypatch.setattr(embedding_backends, "openvino_installed", lambda: True)
    assert resolve_backend("auto", path) == "openvino-int8"


def test_the_configuration_offers_exactly_the_backends_there_are() -> None:
    # core/config.py spells the choices out (importing them would pull numpy into
    # loading the configuration, which the gateway-alone install has not); this
    # keeps the two lists from drifting apart when a backend comes or goes.
    from typing import get_args

    from gatehouse.core.config import LocalEmbeddingConfig

    offered = get_args(LocalEmbeddingConfig.model_fields["backend"].annotation)
    assert sorted(offered) == sorted(get_args(embedding_backends.BackendChoice))
