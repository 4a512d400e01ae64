"""The collection catalog: create, list, describe, open and delete collections.

Collections live under ``<root>/<name>/`` (``collection.json`` with the
settings, ``chunks.db`` with everything else). Creating a collection writes
its folder under a temporary name and renames it into place, so a
half-created collection is never visible. Every operation runs as a caller:
a collection it may not access (see :mod:`gatehouse.rag.access`) is a 404,
the same as one that does not exist.
"""

from __future__ import annotations

import shutil
import time
import uuid
from contextlib import closing
from pathlib import Path

import orjson

from gatehouse.core.errors import ConflictError, NotFoundError, PermissionDeniedError
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.rag.access import Owner, OwnerKind, may_access, owner_for, sees_everything
from gatehouse.rag.collection import Collection
from gatehouse.rag.cross_encoder import CrossEncoderReranker
from gatehouse.rag.models import CollectionInfo, CollectionSpec
from gatehouse.rag.store import Store
from gatehouse.rag.vector import ANN_THRESHOLD
from gatehouse.rag.vector_backends import EmbeddedBackend, VectorBackend


class Catalog:
    """The collections under ``root``, their vectors kept by ``vectors``; open ones cached."""

    def __init__(
        self,
        root: Path,
        *,
        vectors: VectorBackend | None = None,
        ann_threshold: int = ANN_THRESHOLD,
    ) -> None:
        self.root = root
        self.vectors: VectorBackend = vectors or EmbeddedBackend()
        self.ann_threshold = ann_threshold
        self._open: dict[str, Collection] = {}

    def create(
        self, spec: CollectionSpec, *, caller: Principal = LOCAL, owner: OwnerKind | None = None
    ) -> CollectionInfo:
        """A new collection owned by ``caller``'s team (or key, or ``owner``).

        Names are global, like bucket names: a name taken by any owner is a 409.
        """
        if spec.cross_encoder is not None and not sees_everything(caller):
            # A folder on the server, loaded as model weights: not for every key to
            # name (and whether a path exists is not every key's to learn).
            raise PermissionDeniedError(
                "only an administrator may set cross_encoder, a folder on the server",
                param="cross_encoder",
            )
        owned_by = owner_for(caller, owner)
        target = self.root / spec.name
        if target.exists():
            raise ConflictError(f"collection '{spec.name}' already exists", param="name")
        if spec.cross_encoder is not None:
            path = Path(spec.cross_encoder).expanduser().resolve()
            CrossEncoderReranker(path)  # checks the folder: a clear error now, not at search
            spec = spec.model_copy(update={"cross_encoder": str(path)})
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".new-{uuid.uuid4().hex}"
        staging.mkdir()
        record = {
            **spec.model_dump(),
            "created_at": int(time.time()),
            "owner": None if owned_by is None else owned_by.model_dump(),
        }
        (staging / "collection.json").write_bytes(orjson.dumps(record))
        Store(staging).close()
        try:
            staging.rename(target)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            raise ConflictError(f"collection '{spec.name}' already exists", param="name") from None
        return self.describe(spec.name, caller=caller)

    def collections(self, *, caller: Principal = LOCAL) -> list[CollectionInfo]:
        """The collections ``caller`` may access, by name."""
        if not self.root.is_dir():
            return []
        names = sorted(p.name for p in self.root.iterdir() if (p / "collection.json").is_file())
        found = []
        for name in names:
            try:
                found.append(self.describe(name, caller=caller))
            except NotFoundError:  # not the caller's, or deleted meanwhile
                continue
        return found

    def describe(self, name: str, *, caller: Principal = LOCAL) -> CollectionInfo:
        """``name``'s settings, owner and counts."""
        collection = self.open(name, caller=caller)
        record = orjson.loads((collection.directory / "collection.json").read_bytes())
        with closing(collection.store()) as store:
            documents, chunks = store.counts()
            dimensions = store.dimensions()
        return CollectionInfo(
            **collection.spec.model_dump(),
            documents=documents,
            chunks=chunks,
            dimensions=dimensions,
            created_at=int(record.get("created_at", 0)),
            owner=collection.owner,
        )

    def delete(self, name: str, *, caller: Principal = LOCAL) -> None:
        """Delete ``name``, its vectors wherever the backend keeps them included."""
        directory = self.open(name, caller=caller).directory
        self.vectors.drop(name)
        self._forget(name)
        # Rename first: readers stop seeing it at once, and a crash mid-delete
        # leaves a hidden folder rather than a broken collection.
        trash = self.root / f".deleted-{uuid.uuid4().hex}"
        directory.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def open(self, name: str, *, caller: Principal = LOCAL) -> Collection:
        """The open collection ``name``; 404 when absent or not ``caller``'s to see."""
        directory = self.root / name
        config = directory / "collection.json"
        missing = NotFoundError(f"collection '{name}' does not exist", param="collection")
        if not name or name.startswith(".") or "/" in name or not config.is_file():
            self._forget(name)
            raise missing
        opened = self._open.get(name)
        if opened is None:
            record = orjson.loads(config.read_bytes())
            spec = CollectionSpec.model_validate(
                {k: v for k, v in record.items() if k in CollectionSpec.model_fields}
            )
            owner = record.get("owner")
            opened = self._open[name] = Collection(
                directory,
                spec,
                ann_threshold=self.ann_threshold,
                vector_backend=self.vectors.builder(name),
                owner=None if owner is None else Owner.model_validate(owner),
            )
        if not may_access(opened.owner, caller):
            raise missing
        return opened

    def _forget(self, name: str) -> None:
        closed = self._open.pop(name, None)
        if closed is not None:
            closed.close()
