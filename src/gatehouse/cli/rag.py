"""``gatehouse ingest | search | ask | collections``: the RAG engine from the command line.

Runs in-process against the data directory (no server needed); embeddings
and answers go through an in-process gateway, as the server's would.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from gatehouse.cli.arguments import non_negative_int, positive_int
from gatehouse.core.config import Settings
from gatehouse.core.errors import NotFoundError, ValidationFailedError
from gatehouse.core.extras import require_extra
from gatehouse.rag import (
    AnswerRequest,
    ChunkingConfig,
    CollectionSpec,
    DocumentIn,
    RagEngine,
    vector_backend,
)
from gatehouse.rag.loaders import iter_files, load_path

# Documents per ingestion transaction: enough chunks that the embedder can sort
# them by length and pad little (64 short passages ran at a third of the speed
# of 1,000), few enough that an interrupted run loses seconds of work.
BATCH_DOCUMENTS = 1024
BATCH_CHARS = 1_000_000


def add_parsers(commands: Any) -> None:
    """Register the RAG subcommands on the main parser's subparsers."""
    ingest = commands.add_parser("ingest", help="ingest files, folders or BEIR-style JSONL")
    ingest.add_argument("path", type=Path, help="a file or a folder")
    ingest.add_argument("--collection", "-c", required=True)
    ingest.add_argument("--prune", action="store_true", help="delete documents whose file is gone")
    ingest.add_argument("--chunking", choices=["tokens", "structure", "semantic"])
    ingest.add_argument("--chunk-size", type=positive_int)
    ingest.add_argument("--chunk-overlap", type=non_negative_int)

    search = commands.add_parser("search", help="search a collection")
    search.add_argument("query")
    search.add_argument("--collection", "-c", required=True)
    search.add_argument("--top-k", type=positive_int, default=5)
    search.add_argument("--mode", choices=["hybrid", "dense", "keyword", "rrf"], default="hybrid")
    search.add_argument("--filter", help='metadata filter as JSON, e.g. \'{"lang": "en"}\'')
    search.add_argument("--json", action="store_true", help="print the results as JSON")
    search.add_argument(
        "--rerank",
        choices=["none", "llm", "cross_encoder"],
        default="none",
        help="reorder the hits by the chat model or the collection's cross-encoder",
    )

    ask = commands.add_parser("ask", help="answer a question from a collection, with citations")
    ask.add_argument("question")
    ask.add_argument("--collection", "-c", required=True)
    ask.add_argument("--model", help="chat model (default: rag.answer_model)")
    ask.add_argument("--top-k", type=positive_int)

    manage = commands.add_parser("collections", help="list, create, show or delete collections")
    actions = manage.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="list collections")
    create = actions.add_parser("create", help="create a collection")
    create.add_argument("name")
    create.add_argument("--embedding-model", default="local/minilm")
    create.add_argument("--chunking", choices=["tokens", "structure", "semantic"])
    create.add_argument("--chunk-size", type=positive_int)
    create.add_argument("--chunk-overlap", type=non_negative_int)
    create.add_argument("--language", default="auto")
    create.add_argument(
        "--cross-encoder",
        type=Path,
        help="folder of a sentence-transformers CrossEncoder, for --rerank cross_encoder",
    )
    for action in ("show", "delete"):
        actions.add_parser(action, help=f"{action} a collection").add_argument("name")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one RAG subcommand; errors propagate as GatehouseError to the caller."""
    engine = build_engine(settings)
    if args.command == "ingest":
        root, files, documents = _load(engine, args)
        return asyncio.run(_ingest(engine, args, root, files, documents))
    if args.command == "search":
        return asyncio.run(_search(engine, args))
    if args.command == "ask":
        return asyncio.run(_ask(engine, args))
    return _collections(engine, args)


def build_engine(settings: Settings) -> RagEngine:
    from gatehouse.gateway import build_gateway

    require_extra("rag", "RAG")

    return RagEngine(
        settings.data_dir / "rag",
        build_gateway(settings, started_at=int(time.time())),
        max_document_chars=settings.rag.max_document_chars,
        answer_model=settings.rag.answer_model,
        context_tokens=settings.rag.context_tokens,
        vector_backend=vector_backend(settings.rag),
    )


def _chunking(args: argparse.Namespace) -> ChunkingConfig:
    values = {
        "strategy": args.chunking,
        "size": args.chunk_size,
        "overlap": args.chunk_overlap,
    }
    return ChunkingConfig.model_validate({k: v for k, v in values.items() if v is not None})


def _load(engine: RagEngine, args: argparse.Namespace) -> tuple[Path, list[Path], list[DocumentIn]]:
    root: Path = args.path.resolve()
    if not root.exists():
        raise ValidationFailedError(f"{args.path}: no such file or folder")
    # Load and check everything first: a bad file stops the run before anything is written.
    documents: list[DocumentIn] = []
    files = list(iter_files(root))
    if not files:
        raise ValidationFailedError(f"{args.path}: no supported files found")
    for path in files:
        in_file = list(load_path(path))
        for number, loaded in enumerate(in_file, start=1):
            # A .jsonl file's lines without an id of their own are told apart by
            # their place in the file (they all had the file's id, each replacing the last).
            default_id = f"file:{path}" if len(in_file) == 1 else f"file:{path}#{number}"
            documents.append(
                DocumentIn(
                    id=loaded.id or default_id,
                    text=loaded.text,
                    title=loaded.title,
                    source=str(path),
                    metadata={
                        k: v
                        for k, v in loaded.metadata.items()
                        if isinstance(v, str | int | float | bool)
                    },
                )
            )
    try:
        engine.validate(documents)
    except ValidationFailedError as exc:
        # Name the document by where it came from, not by its list position.
        index = int(exc.param.split("[")[1].split("]")[0]) if exc.param else 0
        source = documents[index].source or documents[index].id
        raise ValidationFailedError(f"{source} ({documents[index].id}): {exc.message}") from None
    try:
        engine.collection(args.collection)
    except NotFoundError:
        engine.create_collection(CollectionSpec(name=args.collection, chunking=_chunking(args)))
        print(f"created collection '{args.collection}'", file=sys.stderr)
    return root, files, documents


async def _ingest(
    engine: RagEngine,
    args: argparse.Namespace,
    root: Path,
    files: list[Path],
    documents: list[DocumentIn],
) -> int:
    totals = {"added": 0, "unchanged": 0, "replaced": 0, "chunks": 0}
    started = time.monotonic()
    # Each batch is one transaction: an interrupted run keeps what it finished,
    # and running it again skips those documents by their content hash.
    done = 0
    for batch in batches(documents):
        result = await engine.add_documents(args.collection, batch)
        for key in totals:
            totals[key] += getattr(result, key)
        done += len(batch)
        _progress(done, len(documents), started)
    if totals["added"] or totals["replaced"]:
        info = engine.describe(args.collection)
        if info.chunks >= engine.ann_threshold and engine.vector_backend.in_process:
            # Build (or extend) and save the HNSW graph now, so the server opens it fast.
            print(f"indexing {info.chunks} chunks", file=sys.stderr)
            await engine.index(args.collection)
    pruned = 0
    if args.prune:
        keep = {str(path) for path in files}
        pruned = engine.prune(args.collection, str(root), keep)
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    print(
        f"{len(documents)} documents: {totals['added']} added, {totals['replaced']} replaced, "
        f"{totals['unchanged']} unchanged, {pruned} pruned; {totals['chunks']} chunks written"
    )
    return 0


def batches(documents: Sequence[DocumentIn]) -> Iterator[list[DocumentIn]]:
    """Consecutive runs of up to ``BATCH_DOCUMENTS`` documents or ``BATCH_CHARS`` characters."""
    batch: list[DocumentIn] = []
    size = 0
    for document in documents:
        if batch and (len(batch) == BATCH_DOCUMENTS or size + len(document.text) > BATCH_CHARS):
            yield batch
            batch, size = [], 0
        batch.append(document)
        size += len(document.text)
    if batch:
        yield batch


def _progress(done: int, total: int, started: float) -> None:
    rate = done / max(time.monotonic() - started, 1e-6)
    line = f"ingest {done}/{total} documents ({rate:.1f}/s)"
    if sys.stderr.isatty():
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {line}")
        sys.stderr.flush()
    else:  # a batch is up to 1,024 documents: a line each is not too chatty
        print(line, file=sys.stderr)


async def _search(engine: RagEngine, args: argparse.Namespace) -> int:
    where = None
    if args.filter:
        try:
            where = orjson.loads(args.filter)
        except orjson.JSONDecodeError:
            raise ValidationFailedError("--filter must be a JSON object") from None
        if not isinstance(where, dict):
            raise ValidationFailedError("--filter must be a JSON object")
    hits = await engine.search(
        args.collection,
        args.query,
        top_k=args.top_k,
        mode=args.mode,
        where=where,
        rerank=args.rerank,
    )
    if args.json:
        print(orjson.dumps({"results": [h.model_dump() for h in hits]}).decode())
        return 0
    for rank, hit in enumerate(hits, start=1):
        snippet = " ".join(hit.text.split())[:160]
        print(f"{rank}. [{hit.score:.3f}] {hit.document_id} ({hit.chunk_id})\n   {snippet}")
    return 0


async def _ask(engine: RagEngine, args: argparse.Namespace) -> int:
    request = AnswerRequest(query=args.question, model=args.model, top_k=args.top_k, stream=True)
    async for event in engine.answer_stream(args.collection, request):
        if event.type == "delta" and event.content:
            sys.stdout.write(event.content)
            sys.stdout.flush()
        elif event.type == "done":
            sys.stdout.write("\n")
            for citation in event.citations or []:
                print(f"[{citation.index}] {citation.document_id} ({citation.chunk_id})")
    return 0


def _collections(engine: RagEngine, args: argparse.Namespace) -> int:
    if args.action == "list":
        for info in engine.collections():
            print(f"{info.name}\t{info.documents} documents\t{info.chunks} chunks")
    elif args.action == "create":
        spec = CollectionSpec(
            name=args.name,
            embedding_model=args.embedding_model,
            chunking=_chunking(args),
            language=args.language,
            cross_encoder=str(args.cross_encoder) if args.cross_encoder else None,
        )
        engine.create_collection(spec)
        print(f"created collection '{args.name}'")
    elif args.action == "show":
        print(
            orjson.dumps(
                engine.describe(args.name).model_dump(), option=orjson.OPT_INDENT_2
            ).decode()
        )
    else:
        engine.delete_collection(args.name)
        print(f"deleted collection '{args.name}'")
    return 0
