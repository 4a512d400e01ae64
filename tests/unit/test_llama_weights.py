"""Which llama.cpp kernels the local chat model may use, per CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.providers.local.cpu import has_amx
from gatehouse.providers.local.weights import extra_buffers_safe, generation_weights

ZEN4 = "fpu avx2 avx512f avx512bw avx512_vnni avx512_bf16"
SAPPHIRE_RAPIDS = "avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 avx512_fp16 amx_tile amx_int8"


def cpuinfo(tmp_path: Path, flags: str | None) -> Path:
    path = tmp_path / "cpuinfo"
    text = "processor\t: 0\nmodel name\t: test\n"
    path.write_text(text if flags is None else f"{text}flags\t\t: {flags}\n")
    return path


@pytest.mark.parametrize(
    ("flags", "amx"), [(ZEN4, False), (SAPPHIRE_RAPIDS, True), ("", False), (None, False)]
)
def test_amx_is_read_from_the_flags_line(tmp_path: Path, flags: str | None, amx: bool) -> None:
    assert has_amx(cpuinfo(tmp_path, flags).read_text()) is amx


def test_the_amx_kernels_are_off_where_the_cpu_has_amx(tmp_path: Path) -> None:
    # llama.cpp's AMX matrix kernels crashed multi-token decodes of the shipped
    # model on a Sapphire Rapids Xeon: there the extra buffer types are off.
    assert extra_buffers_safe(cpuinfo(tmp_path, SAPPHIRE_RAPIDS)) is False
    assert extra_buffers_safe(cpuinfo(tmp_path, ZEN4)) is True
    assert extra_buffers_safe(tmp_path / "missing") is True


def test_without_amx_generation_runs_on_the_llamas_own_weights(tmp_path: Path) -> None:
    class Loaded:
        _model = object()

    llama = Loaded()
    weights = generation_weights(llama, tmp_path / "unread.gguf", cpuinfo(tmp_path, ZEN4))
    assert weights is llama._model  # no second load of the file
