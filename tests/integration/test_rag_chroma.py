"""The vector-index conformance suite against a real Chroma server (``chroma run``).

The server comes from ``.venv-chroma`` (``make chroma`` creates it; ``make
test`` does so first), so the main package never depends on ``chromadb``.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gatehouse.rag.chroma import ChromaVectorIndex

from ..unit.test_rag_vector_index import (  # the shared conformance suite
    test_empty_index_returns_nothing,
    test_filter_limits_the_candidates,
    test_nearest_first_with_cosine_scores,
    test_re_adding_a_row_replaces_its_vector,
    test_removed_rows_are_never_returned,
    test_rows_added_after_search_are_found,
)
from .conftest import free_port

CHROMA = Path(__file__).resolve().parents[2] / ".venv-chroma" / "bin" / "chroma"

__all__ = [
    "test_empty_index_returns_nothing",
    "test_filter_limits_the_candidates",
    "test_nearest_first_with_cosine_scores",
    "test_re_adding_a_row_replaces_its_vector",
    "test_removed_rows_are_never_returned",
    "test_rows_added_after_search_are_found",
]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMA.exists():
        pytest.fail(f"{CHROMA} is missing: run `make chroma`")
    port = free_port()
    log = tmp_path_factory.mktemp("chroma") / "chroma.log"
    process = subprocess.Popen(
        [str(CHROMA), "run", "--path", str(log.parent / "db"), "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"chroma did not start:\n{log.read_text()}")
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def index(chroma_url: str) -> Iterator[ChromaVectorIndex]:
    backend = ChromaVectorIndex(chroma_url, f"t-{uuid.uuid4().hex[:12]}", 8)
    yield backend
    backend.drop()
    backend.close()


def test_a_reopened_index_knows_its_rows(chroma_url: str) -> None:
    import numpy as np

    name = f"t-{uuid.uuid4().hex[:12]}"
    first = ChromaVectorIndex(chroma_url, name, 8)
    first.add([1, 2], np.eye(8, dtype=np.float32)[:2])
    again = ChromaVectorIndex(chroma_url, name, 8)
    assert len(again) == 2
    assert again.search(np.eye(8, dtype=np.float32)[1], 1)[0][0] == 2
    first.drop()
