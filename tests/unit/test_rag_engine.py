"""The engine end to end over a fake embedding model: ingest, re-ingest, search, delete."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gatehouse.cli.rag import _load
from gatehouse.core.errors import (
    ConflictError,
    NotFoundError,
    ServiceUnavailableError,
    ValidationFailedError,
)
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.rag import CollectionSpec, DocumentIn, RagEngine
from gatehouse.rag.store import Store

from .fakes import EchoChat
from .rag_fakes import BagOfWords

DOCS = [
    DocumentIn(
        id="cats", text="Cats purr and sleep all day.", title="Cats", metadata={"kind": "pet"}
    ),
    DocumentIn(id="dogs", text="Dogs bark at the mailman.", title="Dogs", metadata={"kind": "pet"}),
    DocumentIn(id="tax", text="Income tax is due in April.", metadata={"kind": "money"}),
]


@pytest.fixture
def bow() -> BagOfWords:
    return BagOfWords()


@pytest.fixture
def engine(tmp_path: Path, bow: BagOfWords) -> RagEngine:
    gateway = Gateway(ModelRegistry([bow, EchoChat()], {"default": "test/echo"}), started_at=0)
    rag = RagEngine(tmp_path / "rag", gateway, max_document_chars=5000)
    rag.create_collection(CollectionSpec(name="kb", embedding_model="test/bow"))
    return rag


async def test_ingest_then_search_every_mode(engine: RagEngine) -> None:
    result = await engine.add_documents("kb", DOCS)
    assert (result.added, result.unchanged, result.replaced) == (3, 0, 0)
    for mode in ("hybrid", "dense", "keyword", "rrf"):
        hits = await engine.search("kb", "why do cats purr", top_k=2, mode=mode)  # type: ignore[arg-type]
        assert hits[0].document_id == "cats", mode
        assert hits[0].chunk_id.startswith("cats#")


async def test_reingest_is_a_no_op_and_changes_replace_atomically(
    engine: RagEngine, bow: BagOfWords
) -> None:
    await engine.add_documents("kb", DOCS)
    calls = bow.calls
    again = await engine.add_documents("kb", DOCS)
    assert (again.added, again.unchanged, again.chunks) == (0, 3, 0)
    assert bow.calls == calls  # nothing re-embedded
    changed = DOCS[0].model_copy(update={"text": "Cats hunt mice at night."})
    result = await engine.add_documents("kb", [changed])
    assert result.replaced == 1
    hits = await engine.search("kb", "purr", mode="keyword")
    assert all(h.document_id != "cats" for h in hits)  # the old chunks are gone
    assert (await engine.search("kb", "mice", mode="keyword"))[0].document_id == "cats"


async def test_delete_removes_chunks_from_both_indexes(engine: RagEngine) -> None:
    await engine.add_documents("kb", DOCS)
    await engine.search("kb", "cats")  # load the indexes first
    assert engine.delete_documents("kb", ["cats"]) == 1
    for mode in ("dense", "keyword", "hybrid"):
        hits = await engine.search("kb", "cats purr", top_k=10, mode=mode)  # type: ignore[arg-type]
        assert all(h.document_id != "cats" for h in hits), mode
    with pytest.raises(NotFoundError):
        engine.document("kb", "cats")


async def test_another_engine_on_the_same_folder_sees_changes(
    engine: RagEngine, tmp_path: Path, bow: BagOfWords
) -> None:
    await engine.add_documents("kb", DOCS[:1])
    gateway = Gateway(ModelRegistry([bow]), started_at=0)
    reader = RagEngine(tmp_path / "rag", gateway)
    assert (await reader.search("kb", "cats"))[0].document_id == "cats"
    await engine.add_documents("kb", DOCS[1:])
    engine.delete_documents("kb", ["cats"])
    ids = {h.document_id for h in await reader.search("kb", "cats dogs tax", top_k=10)}
    assert ids == {"dogs", "tax"}


async def test_filters_on_metadata_and_unknown_fields(engine: RagEngine) -> None:
    await engine.add_documents("kb", DOCS)
    hits = await engine.search("kb", "cats tax dogs", top_k=10, where={"kind": "money"})
    assert [h.document_id for h in hits] == ["tax"]
    with pytest.raises(ValidationFailedError, match="unknown filter field 'colour'"):
        await engine.search("kb", "cats", where={"colour": "red"})


async def test_failed_embedding_writes_nothing(engine: RagEngine, bow: BagOfWords) -> None:
    # 130 documents' chunks go out as three embedding requests; the second fails.
    many = [DocumentIn(id=f"n{i}", text=f"note number {i}") for i in range(127)]
    bow.fail_after = bow.calls + 1
    with pytest.raises(ServiceUnavailableError):
        await engine.add_documents("kb", [*DOCS, *many])
    assert bow.calls >= 2
    assert engine.describe("kb").documents == 0
    assert engine.describe("kb").chunks == 0


async def test_bad_documents_are_rejected_before_anything_is_written(engine: RagEngine) -> None:
    with pytest.raises(ValidationFailedError, match="empty"):
        await engine.add_documents("kb", [DOCS[0], DocumentIn(text="   ")])
    with pytest.raises(ValidationFailedError, match="the limit is 5000"):
        await engine.add_documents("kb", [DOCS[0], DocumentIn(text="x " * 5000)])
    with pytest.raises(ValidationFailedError, match="unique"):
        await engine.add_documents("kb", [DOCS[0], DOCS[0]])
    assert engine.describe("kb").documents == 0


async def test_unknown_and_duplicate_collections(engine: RagEngine) -> None:
    with pytest.raises(NotFoundError, match="collection 'nope' does not exist"):
        await engine.search("nope", "x")
    with pytest.raises(ConflictError):
        engine.create_collection(CollectionSpec(name="kb"))
    engine.delete_collection("kb")
    assert engine.collections() == []


async def test_generated_ids_are_stable(engine: RagEngine) -> None:
    first = await engine.add_documents("kb", [DocumentIn(text="Same text.")])
    second = await engine.add_documents("kb", [DocumentIn(text="Same text.")])
    assert (first.added, second.unchanged) == (1, 1)


async def test_interrupted_write_leaves_the_old_version(engine: RagEngine, tmp_path: Path) -> None:
    await engine.add_documents("kb", DOCS[:1])
    store = Store(tmp_path / "rag" / "kb")
    before = store.chunks_of("cats")

    def crash() -> None:
        with store._writing() as db:  # a crash in the middle of a transaction
            db.execute("DELETE FROM chunks WHERE document_id='cats'")
            raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        crash()
    assert store.chunks_of("cats") == before
    store.close()


async def test_answer_cites_retrieved_chunks_or_says_i_dont_know(engine: RagEngine) -> None:
    from gatehouse.rag import AnswerRequest

    await engine.add_documents("kb", DOCS)
    reply = await engine.answer("kb", AnswerRequest(query="Why do cats purr?"))
    assert reply.citations
    chunk_ids = {h.chunk_id for h in reply.results}
    assert all(c.chunk_id in chunk_ids for c in reply.citations)
    nothing = await engine.answer("kb", AnswerRequest(query="quantum chromodynamics"))
    assert nothing.answer.startswith("I don't know")
    assert nothing.citations == []
    events = [e async for e in engine.answer_stream("kb", AnswerRequest(query="cats purr"))]
    assert [events[0].type, events[-1].type] == ["results", "done"]
    assert any(e.type == "delta" for e in events)


def test_cli_gives_each_jsonl_line_without_an_id_its_own(engine: RagEngine, tmp_path: Path) -> None:
    lines = tmp_path / "notes.jsonl"
    lines.write_text('{"text": "first"}\n{"text": "second"}\n{"_id": "own", "text": "third"}\n')
    single = tmp_path / "one.md"
    single.write_text("# One\n\nalone")
    args = argparse.Namespace(
        path=tmp_path, collection="notes", chunk_size=None, chunk_overlap=None, chunking=None
    )
    _, _, documents = _load(engine, args)
    assert sorted(d.id for d in documents if d.id) == sorted(
        [f"file:{lines}#1", f"file:{lines}#2", "own", f"file:{single}"]
    )
