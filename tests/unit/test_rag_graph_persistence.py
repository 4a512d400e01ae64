"""The HNSW graph saved with a collection: reused on reopen, never trusted when it is off."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.rag import CollectionSpec, DocumentIn, RagEngine, graph_file, vector
from gatehouse.rag.vector import EmbeddedVectorIndex

from .fakes import EchoChat
from .rag_fakes import BagOfWords

DIM = 16


def unit(rows: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def data() -> np.ndarray:  # type: ignore[type-arg]
    return unit(np.random.default_rng(7).normal(size=(600, DIM)))


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts graphs built from scratch (the path a saved graph must spare)."""
    calls: list[int] = []
    real = vector._new_graph

    def counting(dimensions: int, capacity: int) -> Any:
        calls.append(capacity)
        return real(dimensions, capacity)

    monkeypatch.setattr(vector, "_new_graph", counting)
    return calls


def saved_index(graph_dir: Path, data: np.ndarray, n: int = 500) -> EmbeddedVectorIndex:  # type: ignore[type-arg]
    index = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=graph_dir)
    index.add(list(range(n)), data[:n])
    index.build()
    return index


def manifest(graph_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((graph_dir / graph_file.MANIFEST).read_bytes())
    return loaded


def test_a_reopened_index_answers_identically_without_building(
    tmp_path: Path,
    data: np.ndarray,
    builds: list[int],  # type: ignore[type-arg]
) -> None:
    first = saved_index(tmp_path, data)
    assert builds == [1024]
    assert manifest(tmp_path)["count"] == 500
    reopened = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=tmp_path)
    assert reopened.load(list(range(500)), data[:500]) is True
    for query in data[500:540]:
        assert reopened.search(query, 10) == first.search(query, 10)
    assert builds == [1024]  # the second index never built a graph


def test_rows_added_and_deleted_after_the_save_are_honoured(
    tmp_path: Path,
    data: np.ndarray,
    builds: list[int],  # type: ignore[type-arg]
) -> None:
    saved_index(tmp_path, data)
    # The store has moved on: rows 3 and 10 deleted, rows 500..599 added.
    rowids = [r for r in range(600) if r not in (3, 10)]
    reopened = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=tmp_path)
    assert reopened.load(rowids, data[rowids]) is True
    assert len(reopened) == 598
    for rowid in (3, 10):
        assert rowid not in {r for r, _ in reopened.search(data[rowid], 50)}
    for rowid in (0, 250, 520, 599):
        assert reopened.search(data[rowid], 1)[0][0] == rowid
    assert builds == [1024]  # new rows were inserted into the loaded graph
    # 100 new positions is 20% growth: the extended graph was saved again.
    assert manifest(tmp_path)["count"] == 600
    assert reopened.vectors_of([3, 520]).tolist() == [[0.0] * DIM, data[520].tolist()]


def test_small_growth_does_not_rewrite_the_graph(
    tmp_path: Path,
    data: np.ndarray,  # type: ignore[type-arg]
) -> None:
    index = saved_index(tmp_path, data)
    before = manifest(tmp_path)["graph"]["name"]
    index.add(list(range(500, 520)), data[500:520])  # 4% more: below SAVE_GROWTH
    index.build()
    assert manifest(tmp_path)["graph"]["name"] == before
    index.add(list(range(520, 560)), data[520:560])  # 12% more than the last save
    index.build()
    assert manifest(tmp_path)["count"] == 560
    assert sorted(p.name.split("-")[0] for p in tmp_path.glob("*-*")) == ["graph", "rows"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "rows", "manifest", "missing"])
def test_a_damaged_save_is_detected_and_rebuilt(
    tmp_path: Path,
    data: np.ndarray,  # type: ignore[type-arg]
    builds: list[int],
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = saved_index(tmp_path, data)
    graph_path = tmp_path / manifest(tmp_path)["graph"]["name"]
    rows_path = tmp_path / manifest(tmp_path)["rows"]["name"]
    if damage == "truncate":
        graph_path.write_bytes(graph_path.read_bytes()[:-4096])
    elif damage == "flip":
        raw = bytearray(graph_path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        graph_path.write_bytes(bytes(raw))
    elif damage == "rows":
        rows_path.write_bytes(rows_path.read_bytes()[:100])
    elif damage == "manifest":
        (tmp_path / graph_file.MANIFEST).write_bytes(b'{"format": 1, "graph": ')
    else:
        graph_path.unlink()
    reopened = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="gatehouse.rag"):
        assert reopened.load(list(range(500)), data[:500]) is False
    assert "rebuilding the HNSW graph" in caplog.text
    for query in data[500:520]:
        assert [r for r, _ in reopened.search(query, 5)] == [r for r, _ in first.search(query, 5)]
    assert len(builds) == 2  # built anew ...
    again = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=tmp_path)
    assert again.load(list(range(500)), data[:500]) is True  # ... and saved sound again


def test_a_graph_of_other_vectors_is_not_trusted(
    tmp_path: Path,
    data: np.ndarray,  # type: ignore[type-arg]
) -> None:
    saved_index(tmp_path, data)
    other = unit(np.random.default_rng(8).normal(size=(500, DIM)))
    reopened = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=tmp_path)
    assert reopened.load(list(range(500)), other) is False
    assert reopened.search(other[42], 1)[0][0] == 42


def test_a_graph_of_mostly_deleted_rows_is_rebuilt(
    tmp_path: Path,
    data: np.ndarray,  # type: ignore[type-arg]
    builds: list[int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    saved_index(tmp_path, data)
    rowids = list(range(300, 600))  # 0..299 deleted since the save, 500..599 new
    reopened = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=tmp_path)
    with caplog.at_level(logging.WARNING, logger="gatehouse.rag"):
        assert reopened.load(rowids, data[300:]) is False
    assert "only 200 of its 500 positions are still live" in caplog.text
    assert reopened.search(data[450], 1)[0][0] == 450
    assert len(builds) == 2


def test_other_parameters_are_not_loaded(tmp_path: Path, data: np.ndarray) -> None:  # type: ignore[type-arg]
    saved_index(tmp_path, data)
    with pytest.raises(graph_file.GraphFileError, match="dimensions"):
        graph_file.load(tmp_path, graph_file.GraphParams(32, vector.HNSW_M, 200))


def test_a_failed_save_keeps_the_previous_one(
    tmp_path: Path,
    data: np.ndarray,  # type: ignore[type-arg]
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    index = saved_index(tmp_path, data)
    before = manifest(tmp_path)

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(graph_file.np, "save", full_disk)
    index.add(list(range(500, 600)), data[500:600])
    with caplog.at_level(logging.WARNING, logger="gatehouse.rag"):
        index.build()
    assert "could not save the HNSW graph" in caplog.text
    assert manifest(tmp_path) == before
    assert {p.name for p in tmp_path.iterdir()} == {
        before["graph"]["name"],
        before["rows"]["name"],
        graph_file.MANIFEST,
        "save.lock",
    }
    monkeypatch.undo()
    reopened = EmbeddedVectorIndex(DIM, ann_threshold=0, graph_dir=tmp_path)
    assert reopened.load(list(range(600)), data) is True
    assert reopened.search(data[555], 1)[0][0] == 555


async def test_the_engine_saves_after_ingestion_and_reopens_from_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def engine() -> RagEngine:
        gateway = Gateway(ModelRegistry([BagOfWords(), EchoChat()], {}), started_at=0)
        return RagEngine(tmp_path / "rag", gateway, ann_threshold=0)

    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    words += ["eta", "theta", "iota", "kappa", "lambda", "mu"]
    docs = [
        DocumentIn(id=f"d{i}", text=f"{words[i % 12]} {words[(i * 5) % 12]} number {i}")
        for i in range(120)
    ]
    first = engine()
    first.create_collection(CollectionSpec(name="kb", embedding_model="test/bow"))
    await first.add_documents("kb", docs[:60])
    queries = ["alpha gamma", "kappa mu number", "zeta eta"]
    await first.search("kb", queries[0], mode="dense")  # opens: builds and saves the graph
    graph_dir = tmp_path / "rag" / "kb" / "hnsw"
    assert manifest(graph_dir)["count"] == 60
    await first.add_documents("kb", docs[60:])  # open here: indexed and saved at once
    assert manifest(graph_dir)["count"] == 120
    assert first.delete_documents("kb", ["d1", "d61"]) == 2
    expected = [await first.search("kb", q, mode="dense", top_k=20) for q in queries]

    def no_build(dimensions: int, capacity: int) -> Any:
        raise AssertionError("the graph was rebuilt instead of loaded")

    monkeypatch.setattr(vector, "_new_graph", no_build)
    second = engine()
    for query, hits in zip(queries, expected, strict=True):
        found = await second.search("kb", query, mode="dense", top_k=20)
        assert [(h.chunk_id, round(h.score, 5)) for h in found] == [
            (h.chunk_id, round(h.score, 5)) for h in hits
        ]
        assert not {"d1", "d61"} & {h.document_id for h in found}


async def test_the_cli_saves_the_graph_after_a_run_that_reaches_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from gatehouse.cli import rag as cli

    gateway = Gateway(ModelRegistry([BagOfWords(), EchoChat()], {}), started_at=0)
    engine = RagEngine(tmp_path / "rag", gateway, ann_threshold=30)
    engine.create_collection(CollectionSpec(name="kb", embedding_model="test/bow"))
    args = argparse.Namespace(collection="kb", prune=False)
    docs = [DocumentIn(id=f"d{i}", text=f"note {i} about item {i % 7}") for i in range(40)]
    await cli._ingest(engine, args, tmp_path, [], docs[:20])
    assert not (tmp_path / "rag" / "kb" / "hnsw").exists()  # 20 chunks: searched exactly
    await cli._ingest(engine, args, tmp_path, [], docs)
    assert "indexing 40 chunks" in capsys.readouterr().err
    assert manifest(tmp_path / "rag" / "kb" / "hnsw")["count"] == 40
