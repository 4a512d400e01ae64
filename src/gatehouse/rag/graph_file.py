"""The HNSW graph on disk: saved crash-safely, loaded only when it is provably intact.

Layout under a collection's folder::

    hnsw/manifest.json      the commit point: file names, sizes, sha256, graph parameters
    hnsw/graph-<token>.bin  hnswlib's ``save_index`` output
    hnsw/rows-<token>.npy   per graph position: the store row id and whether it was live

A save writes the graph and the rows under a fresh token and fsyncs them, then
replaces the manifest atomically (temporary file, fsync, rename, fsync of the
folder) and only then removes the previous save's files, so a crash at any
point leaves the old or the new save whole. Saves take an exclusive lock and
loads a shared one, so two processes never remove each other's files mid-use.

A load checks the manifest's parameters (format, hnswlib version, dimensions,
M, ef_construction, count) and both files' sizes and checksums before hnswlib
reads a byte; anything off is reported as the reason and the caller rebuilds.

Row ids are never reused by the store and a chunk row is never updated (only
inserted and deleted), so a graph position labelled with row id ``r`` holds
``r``'s vector for as long as ``r`` exists: that is what makes the saved
position -> row id map valid against a store that has moved on since.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from gatehouse.core.extras import needs_extra

FORMAT = 1
MANIFEST = "manifest.json"


class GraphFileError(Exception):
    """A saved graph that cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class GraphParams:
    dimensions: int
    m: int
    ef_construction: int


@dataclass(frozen=True, slots=True)
class SavedGraph:
    """A loaded graph and, per position, the row id it holds and whether it was live."""

    graph: Any
    rowids: np.ndarray[Any, np.dtype[np.int64]]
    alive: np.ndarray[Any, np.dtype[np.bool_]]


def save(
    directory: Path,
    graph: Any,
    rowids: np.ndarray[Any, np.dtype[np.int64]],
    alive: np.ndarray[Any, np.dtype[np.bool_]],
    params: GraphParams,
) -> None:
    """Write ``graph`` (positions ``0..len(rowids)``) and its row map as the current save."""
    if len(rowids) != len(alive) or len(rowids) != graph.get_current_count():
        raise ValueError("one row id and one live flag per graph position")
    directory.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    graph_path = directory / f"graph-{token}.bin"
    rows_path = directory / f"rows-{token}.npy"
    with _locked(directory, fcntl.LOCK_EX):
        try:
            graph.save_index(str(graph_path))
            _fsync(graph_path)
            with rows_path.open("wb") as out:
                np.save(out, np.stack([rowids.astype(np.int64), alive.astype(np.int64)], axis=1))
                out.flush()
                os.fsync(out.fileno())
            manifest = {
                **_identity(params),
                "count": len(rowids),
                "graph": _describe(graph_path),
                "rows": _describe(rows_path),
            }
            staging = directory / f".{MANIFEST}.{token}"
            with staging.open("wb") as out:
                out.write(orjson.dumps(manifest))
                out.flush()
                os.fsync(out.fileno())
            staging.replace(directory / MANIFEST)
            _fsync(directory)
        except BaseException:
            for path in (graph_path, rows_path, directory / f".{MANIFEST}.{token}"):
                path.unlink(missing_ok=True)
            raise
        keep = {graph_path.name, rows_path.name, MANIFEST}
        for path in directory.iterdir():
            if path.name not in keep and path.name.startswith(("graph-", "rows-", f".{MANIFEST}")):
                path.unlink(missing_ok=True)


def load(directory: Path, params: GraphParams) -> SavedGraph | None:
    """The saved graph, or ``None`` when nothing was saved.

    Raises :class:`GraphFileError` naming what is wrong when a save exists but
    does not match ``params``, is incomplete, truncated or corrupted.
    """
    if not (directory / MANIFEST).is_file():
        return None
    with _locked(directory, fcntl.LOCK_SH):
        try:
            manifest = orjson.loads((directory / MANIFEST).read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise GraphFileError(f"unreadable manifest: {exc}") from None
        if not isinstance(manifest, dict):
            raise GraphFileError("the manifest is not a JSON object")
        for key, value in _identity(params).items():
            if manifest.get(key) != value:
                raise GraphFileError(f"saved with {key}={manifest.get(key)!r}, need {value!r}")
        graph_path = _checked(directory, manifest.get("graph"))
        rows_path = _checked(directory, manifest.get("rows"))
        try:
            rows = np.load(rows_path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise GraphFileError(f"unreadable row map: {exc}") from None
        count = manifest.get("count")
        if rows.ndim != 2 or rows.shape[1] != 2 or len(rows) != count:
            raise GraphFileError(f"row map of shape {rows.shape} for {count} positions")
        with needs_extra("rag", "The HNSW vector index"):
            import hnswlib

        graph = hnswlib.Index(space="ip", dim=params.dimensions)
        try:
            graph.load_index(str(graph_path), max_elements=max(int(count), 1))
        except RuntimeError as exc:
            raise GraphFileError(f"hnswlib could not load the graph: {exc}") from None
        if graph.get_current_count() != count:
            raise GraphFileError(f"graph has {graph.get_current_count()} positions, not {count}")
    return SavedGraph(graph, rows[:, 0].astype(np.int64), rows[:, 1].astype(bool))


def _identity(params: GraphParams) -> dict[str, object]:
    """What a save was made with; a load needs every entry to match."""
    return {
        "format": FORMAT,
        "hnswlib": _hnswlib_version(),
        "dimensions": params.dimensions,
        "m": params.m,
        "ef_construction": params.ef_construction,
    }


def _checked(directory: Path, entry: object) -> Path:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(entry, dict) or not isinstance(name, str):
        raise GraphFileError("the manifest names no file")
    path = directory / name
    if path.parent != directory or not path.is_file():
        raise GraphFileError(f"{name} is missing")
    if path.stat().st_size != entry.get("size"):
        raise GraphFileError(
            f"{path.name} has {path.stat().st_size} bytes, the manifest says {entry.get('size')}"
        )
    if _sha256(path) != entry.get("sha256"):
        raise GraphFileError(f"{path.name} does not match its checksum")
    return path


def _describe(path: Path) -> dict[str, object]:
    return {"name": path.name, "size": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _hnswlib_version() -> str:
    # The graph file is hnswlib's own format: another version may not read it the same way.
    return importlib.metadata.version("hnswlib")


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (after a rename), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _locked(directory: Path, mode: int) -> Iterator[None]:
    with (directory / "save.lock").open("a") as lock:
        fcntl.flock(lock, mode)
        yield
