"""Exported ONNX files: a load marks its file used; a new export removes long-unused ones."""

from __future__ import annotations

import os
import time
from pathlib import Path

from gatehouse.providers.local.onnx_export import (
    STALE_AFTER_S,
    cache_key,
    onnx_model_file,
    prune_stale,
)


def aged(path: Path, seconds: float) -> Path:
    path.write_bytes(b"onnx")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_exports_unused_past_the_limit_are_removed_and_the_rest_kept(tmp_path: Path) -> None:
    keep = aged(tmp_path / "minilm-new-onnx-int8.onnx", STALE_AFTER_S * 2)
    old = aged(tmp_path / "minilm-old-onnx-int8.onnx", STALE_AFTER_S + 60)
    old_fp32 = aged(tmp_path / "minilm-old-onnx.onnx", STALE_AFTER_S + 60)
    recent = aged(tmp_path / "minilm-other-onnx.onnx", STALE_AFTER_S - 60)
    unrelated = aged(tmp_path / "notes.txt", STALE_AFTER_S * 2)
    (tmp_path / "minilm-folder.onnx").mkdir()

    assert prune_stale(tmp_path, keep=keep) == [old, old_fp32]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in (keep, recent, unrelated, tmp_path / "minilm-folder.onnx")
    )


def test_loading_a_cached_export_marks_it_used(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (model / name).write_text("{}")
    cache = tmp_path / "cache"
    (cache / "onnx").mkdir(parents=True)
    cached = aged(
        cache / "onnx" / f"minilm-{cache_key(model, 'onnx')}-onnx.onnx", STALE_AFTER_S + 60
    )

    assert onnx_model_file(model, cache, "onnx") == cached  # found: nothing exported
    assert time.time() - cached.stat().st_mtime < 60
    assert prune_stale(cache / "onnx", keep=cache / "onnx" / "another.onnx") == []
