"""A vector index kept in a Chroma server (``chroma run``), spoken to over its v2 HTTP API.

No ``chromadb`` package is needed on the gatehouse side: a few JSON calls
with httpx. Each gatehouse collection maps to one Chroma collection (inner
product space, vectors are normalised, so ``1 - distance`` is the cosine).
Row ids travel as strings. A metadata filter arrives as a predicate over row
ids; the allowed ids are sent with the query, so the server ranks only those.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np

from gatehouse.core.errors import ServiceUnavailableError

FloatArray = np.ndarray[Any, np.dtype[np.float32]]
BATCH = 1000


async def heartbeat(url: str, *, within: float = 1.0) -> str:
    """Ask the Chroma server at ``url`` for its heartbeat; raises when it does not
    answer within ``within`` seconds."""
    async with httpx.AsyncClient(base_url=f"{url.rstrip('/')}/api/v2", timeout=within) as http:
        response = await http.get("/heartbeat")
        response.raise_for_status()
    return "heartbeat"


class ChromaVectorIndex:
    """Vectors of one collection in a Chroma server at ``url``."""

    def __init__(
        self,
        url: str,
        name: str,
        dimensions: int,
        *,
        tenant: str = "default_tenant",
        database: str = "default_database",
        timeout: float = 60.0,
    ) -> None:
        self.dimensions = dimensions
        self._http = httpx.Client(base_url=f"{url.rstrip('/')}/api/v2", timeout=timeout)
        base = f"/tenants/{tenant}/databases/{database}/collections"
        created = self._call(
            "POST",
            base,
            {"name": name, "get_or_create": True, "configuration": {"hnsw": {"space": "ip"}}},
        )
        # Record operations address the collection by id; get and delete by name.
        self._base = f"{base}/{created['id']}"
        self._by_name = f"{base}/{name}"
        self._known: set[int] = set()
        self._load_ids()

    def close(self) -> None:
        self._http.close()

    def __len__(self) -> int:
        return len(self._known)

    def add(self, rowids: Sequence[int], vectors: FloatArray) -> None:
        rows = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dimensions)
        for start in range(0, len(rowids), BATCH):
            ids = [str(r) for r in rowids[start : start + BATCH]]
            self._call(
                "POST",
                f"{self._base}/upsert",
                {"ids": ids, "embeddings": rows[start : start + BATCH].tolist()},
            )
        self._known.update(rowids)

    def remove(self, rowids: Sequence[int]) -> None:
        present = [r for r in rowids if r in self._known]
        for start in range(0, len(present), BATCH):
            ids = [str(r) for r in present[start : start + BATCH]]
            self._call("POST", f"{self._base}/delete", {"ids": ids})
        self._known.difference_update(present)

    def search(
        self,
        vector: FloatArray,
        k: int,
        allowed: Callable[[int], bool] | None = None,
        *,
        exact: bool = False,
    ) -> list[tuple[int, float]]:
        """Chroma always answers from its HNSW graph; ``exact`` is not available here."""
        if not self._known or k <= 0:
            return []
        body: dict[str, Any] = {
            "query_embeddings": [np.asarray(vector, dtype=np.float32).tolist()],
            "n_results": min(k, len(self._known)),
            "include": ["distances"],
        }
        if allowed is not None:
            ids = [str(r) for r in self._known if allowed(r)]
            if not ids:
                return []
            body["ids"] = ids
            body["n_results"] = min(k, len(ids))
        result = self._call("POST", f"{self._base}/query", body)
        return [
            (int(i), 1.0 - float(d))
            for i, d in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def vectors_of(self, rowids: Sequence[int]) -> FloatArray:
        out = np.zeros((len(rowids), self.dimensions), dtype=np.float32)
        wanted = [str(r) for r in rowids if r in self._known]
        if not wanted:
            return out
        result = self._call("POST", f"{self._base}/get", {"ids": wanted, "include": ["embeddings"]})
        found = dict(zip(result["ids"], result["embeddings"], strict=True))
        for index, rowid in enumerate(rowids):
            vector = found.get(str(rowid))
            if vector is not None:
                out[index] = vector
        return out

    def drop(self) -> None:
        """Delete the Chroma collection."""
        self._call("DELETE", self._by_name, None)
        self._known.clear()

    def _load_ids(self) -> None:
        offset = 0
        while True:
            page = self._call(
                "POST", f"{self._base}/get", {"include": [], "limit": 10_000, "offset": offset}
            )
            self._known.update(int(i) for i in page["ids"])
            if len(page["ids"]) < 10_000:
                return
            offset += 10_000

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(f"Chroma server unreachable: {exc}") from None
        if response.status_code >= 400:
            raise ServiceUnavailableError(
                f"Chroma server answered {response.status_code} to {method} {path}: "
                f"{response.text[:200]}"
            )
        return response.json() if response.content else None
