"""The engines that run all-MiniLM-L6-v2: ONNX Runtime (default) or PyTorch.

Both take texts already tokenised (the provider needs the token counts first,
to reject inputs over the model's limit and to report usage) and return
L2-normalised 384-dimensional vectors. ``torch`` is the reference:
sentence-transformers exactly as its documentation runs it. ``onnx`` is the
same fp32 graph under ONNX Runtime with length-bucketed batches: the same
vectors to 1e-6, about 2.7x faster. ``onnx-int8`` runs the projections in
int8 with a scale per token (``quantise``): vectors at 0.998 cosine of fp32
whatever they are batched with, and the default hybrid search within 0.001
nDCG@10 of fp32 (``bench/embedding_speed.py``, ``bench/retrieval.py``,
docs/performance.md).

``openvino`` runs the ``onnx`` graph on OpenVINO (``openvino_runtime``): in
bf16 on AMX, where it is about 1.8x ``onnx-int8`` with vectors nearer fp32's.
``openvino-int8`` runs the ``onnx-int8`` graph on OpenVINO: on a CPU with VNNI
but no AMX about 1.3x ``onnx-int8`` at the same vector quality.

``auto`` (the default) picks by CPU: where OpenVINO is installed,
``openvino`` where the CPU has AMX-BF16 and ``openvino-int8`` where it has
VNNI; without OpenVINO ``onnx-int8`` where the CPU has VNNI (about 1.7x
``onnx``); ``onnx`` elsewhere, where int8 needs onnxruntime's exact kernels
and ran slower than fp32 (docs/performance.md).

The ONNX backends run small inputs (a search query: at most
``SMALL_RUN_TOKENS`` tokens, padding included) on a second session with one
thread. On a few tokens ONNX Runtime's thread pool costs more than it gives:
waking its threads, and their spinning for a while after the run, which on
2 cores took the core the rest of the search needed (docs/performance.md).
The two sessions give the same vectors (no difference at all over the
msmarco queries and passages); the second one is built on first use and
costs about 60 MB.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from gatehouse.providers.local.cpu import CPUINFO, has_amx_bf16, has_vnni, read_cpuinfo
from gatehouse.providers.local.onnx_export import OnnxVariant, onnx_model_file
from gatehouse.providers.local.pooling import (
    FloatArray,
    l2_normalise,
    mean_pool,
    pad_batch,
)

log = logging.getLogger("gatehouse.providers.local")

BackendName = Literal["openvino", "openvino-int8", "onnx-int8", "onnx", "torch"]
BackendChoice = Literal["auto", "openvino", "openvino-int8", "onnx-int8", "onnx", "torch"]
Runtime = Literal["onnxruntime", "openvino"]
DIMENSIONS = 384
# Runs of at most this many tokens (rows x padded length) take the one-thread session.
SMALL_RUN_TOKENS = 128
# What one more model run costs, in tokens' worth of work (token_buckets).
RUN_COST_TOKENS = 64


@dataclass(frozen=True, slots=True)
class TokenizedText:
    """One input: its text and its token ids (special tokens included)."""

    text: str
    ids: Sequence[int]


class GraphSession(Protocol):
    """A compiled graph: an ONNX Runtime session or an :class:`OpenVinoGraph`."""

    def run(self, output_names: list[str], input_feed: Mapping[str, Any]) -> Sequence[Any]:
        """The named outputs for ``input_feed``."""
        ...


class EmbeddingBackend(Protocol):
    """Tokenises and embeds; both calls block and are not thread-safe."""

    name: str

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, with the model's special tokens, never truncated."""
        ...

    def embed(self, items: Sequence[TokenizedText]) -> FloatArray:
        """One unit-length row per item, in order."""
        ...


class OnnxBackend:
    """MiniLM's ONNX graph with the model's own fast tokenizer.

    Inputs are sorted by length and batched so each batch pads only to its own
    longest input; token states are mean-pooled and normalised in numpy exactly
    as sentence-transformers does. ``runtime`` runs the graph: ONNX Runtime, or
    OpenVINO (the ``openvino`` and ``openvino-int8`` backends).
    """

    def __init__(
        self,
        name: str,
        model_file: Path,
        tokenizer_file: Path,
        *,
        batch_size: int,
        threads: int | None = None,
        exact_int8: bool | None = None,
        runtime: Runtime = "onnxruntime",
    ) -> None:
        from tokenizers import Tokenizer

        self.name = name
        self._batch_size = batch_size
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        # The shipped tokenizer.json pads and truncates to 128 for training; the
        # provider needs true lengths and pads per batch itself.
        tokenizer.no_padding()
        tokenizer.no_truncation()
        self._tokenizer = tokenizer
        self._model_file = model_file
        self._exact_int8 = exact_int8 if name == "onnx-int8" else False
        self._runtime = runtime
        self._session = self._open(threads)
        # The one-thread session for small runs (module docstring); built on first use.
        self._small: GraphSession | None = self._session if threads == 1 else None

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(encoding.ids) for encoding in self._tokenizer.encode_batch(list(texts))]

    def embed(self, items: Sequence[TokenizedText]) -> FloatArray:
        out = np.zeros((len(items), DIMENSIONS), dtype=np.float32)
        lengths = [len(item.ids) for item in items]
        for bucket in token_buckets(lengths, self._batch_size):
            input_ids, mask = pad_batch([items[index].ids for index in bucket])
            feeds = {
                "input_ids": input_ids,
                "attention_mask": mask,
                "token_type_ids": np.zeros_like(input_ids),
            }
            (states,) = self._session_for(input_ids.size).run(["token_states"], feeds)
            out[bucket] = l2_normalise(mean_pool(np.asarray(states, dtype=np.float32), mask))
        return out

    def _session_for(self, tokens: int) -> GraphSession:
        if tokens > SMALL_RUN_TOKENS:
            return self._session
        if self._small is None:
            try:
                self._small = self._open(1)
            except Exception as exc:  # the main graph compiled; it serves small runs too
                log.warning(
                    "local/minilm: the one-thread %s graph could not be built (%s: %s); "
                    "small runs use the main one",
                    self.name,
                    type(exc).__name__,
                    exc,
                )
                self._small = self._session
        return self._small

    def _open(self, threads: int | None) -> GraphSession:
        if self._runtime == "openvino":
            from gatehouse.providers.local.openvino_runtime import OpenVinoGraph

            graph = OpenVinoGraph(self._model_file, threads=threads)
            log.info("local/minilm: OpenVINO runs the graph in %s", graph.precision)
            return graph
        session: GraphSession = onnx_session(
            self._model_file, threads=threads, exact_int8=self._exact_int8
        )
        return session


def token_buckets(
    lengths: Sequence[int], max_size: int, run_cost: int = RUN_COST_TOKENS
) -> list[list[int]]:
    """Indices in batches of at most ``max_size``, shortest first, cut to pad little.

    Each batch pads to its longest input. Cutting the sorted inputs into
    batches of exactly ``max_size`` pads a batch that straddles a jump in
    length to the jump; this cuts where the padded tokens plus ``run_cost``
    per batch (a run's fixed cost, in tokens) are fewest, exactly (dynamic
    programming over the sorted lengths). On msmarco passages as ingestion
    batches them it padded 8 % over the real tokens against 2 % here.
    """
    if max_size < 1:
        raise ValueError("max_size must be at least 1")
    order = sorted(range(len(lengths)), key=lambda index: lengths[index])
    # best[end]: the cheapest cut of the first ``end`` sorted inputs; cut[end]: its last start.
    best = [0] + [0] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        start = max(0, end - max_size)
        best[end] = best[start] + longest * (end - start) + run_cost
        cut[end] = start
        for other in range(start + 1, end):
            cost = best[other] + longest * (end - other) + run_cost
            if cost < best[end]:
                best[end], cut[end] = cost, other
    buckets: list[list[int]] = []
    end = len(order)
    while end:
        buckets.append(order[cut[end] : end])
        end = cut[end]
    return buckets[::-1]


def onnx_session(
    model_file: Path, *, threads: int | None = None, exact_int8: bool | None = None
) -> Any:
    """An ONNX Runtime CPU session for ``model_file``, as ``local/minilm`` runs its graphs.

    ``exact_int8`` runs integer products on onnxruntime's exact uint8 kernels
    (``session.x64quantprecision``); ``None`` decides by CPU
    (:func:`u8s8_may_saturate`). It changes nothing in a graph without them.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if exact_int8 is None:
        exact_int8 = u8s8_may_saturate()
        if exact_int8:
            log.info("local/minilm: no VNNI on this CPU; int8 runs on exact uint8 kernels")
    if exact_int8:
        # The same vectors as the fast kernels give on a VNNI CPU, at 0.7x their
        # speed there (docs/configuration.md).
        options.add_session_config_entry("session.x64quantprecision", "1")
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(
        str(model_file), options, providers=["CPUExecutionProvider"]
    )


def default_backend(cpuinfo: str, *, openvino: bool = False) -> BackendName:
    """The backend ``auto`` means on a CPU described by ``cpuinfo`` (its text).

    OpenVINO (when ``openvino``, it is installed) where the CPU has AMX-BF16:
    bf16 on AMX ran at 1.8x int8 there. int8 only where the CPU has VNNI, on
    OpenVINO when installed (1.3x ONNX Runtime's int8 there): elsewhere it
    needs the exact kernels, and on a Xeon without VNNI they ran slower than
    fp32 (38.9 against 42.5 passages/s, docs/performance.md). Unmeasured CPUs
    get fp32.
    """
    if openvino and has_amx_bf16(cpuinfo):
        return "openvino"
    chosen = onnx_runtime_backend(cpuinfo)
    return "openvino-int8" if openvino and chosen == "onnx-int8" else chosen


def onnx_runtime_backend(cpuinfo: str) -> OnnxVariant:
    """The ONNX Runtime backend for a CPU: int8 only where it has VNNI."""
    return "onnx-int8" if has_vnni(cpuinfo) else "onnx"


def openvino_installed() -> bool:
    """Whether the ``openvino`` package can be imported (found, not imported)."""
    return importlib.util.find_spec("openvino") is not None


def resolve_backend(name: BackendChoice, cpuinfo: Path = CPUINFO) -> BackendName:
    """``name``, or for ``auto`` the backend for this machine's CPU."""
    if name != "auto":
        return name
    chosen = default_backend(read_cpuinfo(cpuinfo), openvino=openvino_installed())
    log.info("local/minilm: backend auto is %s on this CPU", chosen)
    return chosen


def u8s8_may_saturate(cpuinfo: Path = CPUINFO) -> bool:
    """Whether onnxruntime's fast uint8 x int8 products can overflow on this CPU.

    On x86 without VNNI they add pairs of byte products into 16 bits
    (VPMADDUBSW), which full-range int8 weights overflow; VNNI accumulates in
    32 bits, and ARM's dot products do not have the problem. When the flags
    cannot be read, the answer is yes: exact and slower rather than fast and
    wrong.
    """
    if platform.machine().lower() not in {"x86_64", "amd64", "x86", "i386", "i686"}:
        return False
    try:
        return not has_vnni(cpuinfo.read_text())
    except OSError:
        return True


class TorchBackend:
    """The reference: sentence-transformers fp32 on PyTorch, as shipped."""

    name = "torch"

    def __init__(self, model_path: Path, *, batch_size: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        self._model: Any = SentenceTransformer(str(model_path), device="cpu")
        self._batch_size = batch_size

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        ids: list[list[int]] = self._model.tokenizer(list(texts))["input_ids"]
        return ids

    def embed(self, items: Sequence[TokenizedText]) -> FloatArray:
        vectors = self._model.encode(
            [item.text for item in items],
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def build_backend(
    name: BackendChoice,
    model_path: Path,
    *,
    cache_dir: Path,
    batch_size: int,
    threads: int | None = None,
    exact_int8: bool | None = None,
) -> EmbeddingBackend:
    """The backend ``name``; one that cannot be built falls back, logged.

    ``openvino`` and ``openvino-int8`` fall back to the ONNX Runtime backend
    this CPU gets without OpenVINO, and an ONNX Runtime one to torch.
    ``exact_int8`` forces onnxruntime's exact int8 kernels on or off
    (``None``: by CPU); benchmarks use it to measure what a CPU without VNNI
    runs.
    """
    resolved = resolve_backend(name)
    if resolved == "openvino" or resolved == "openvino-int8":
        graph: OnnxVariant = "onnx" if resolved == "openvino" else "onnx-int8"
        try:
            return OnnxBackend(
                resolved,
                onnx_model_file(model_path, cache_dir, graph),
                model_path / "tokenizer.json",
                batch_size=batch_size,
                threads=threads,
                runtime="openvino",
            )
        except Exception as exc:  # not installed, or the plugin failed: ONNX Runtime works
            failed, resolved = resolved, onnx_runtime_backend(read_cpuinfo())
            log.warning(
                "local/minilm: the %s backend could not be built (%s: %s); falling back to %s",
                failed,
                type(exc).__name__,
                exc,
                resolved,
            )
    if resolved != "torch":
        variant: OnnxVariant = resolved
        try:
            model_file = onnx_model_file(model_path, cache_dir, variant)
            return OnnxBackend(
                resolved,
                model_file,
                model_path / "tokenizer.json",
                batch_size=batch_size,
                threads=threads,
                exact_int8=exact_int8,
            )
        except Exception as exc:  # any failure to export or load: the torch path still works
            log.warning(
                "local/minilm: the %s backend could not be built (%s: %s); "
                "falling back to torch (sentence-transformers fp32)",
                resolved,
                type(exc).__name__,
                exc,
            )
    return TorchBackend(model_path, batch_size=batch_size)
