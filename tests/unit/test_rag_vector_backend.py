"""``rag.vector_backend``: which backend the settings pick, and the errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.core.config import load_settings
from gatehouse.core.errors import ConfigError
from gatehouse.rag import RagEngine, vector_backend
from gatehouse.rag.vector_backends import ChromaBackend, EmbeddedBackend

CHROMA = "http://127.0.0.1:8000"


def test_embedded_by_default() -> None:
    settings = load_settings(environ={})
    assert settings.rag.vector_backend == "embedded"
    assert vector_backend(settings.rag) == EmbeddedBackend()


def test_chroma_names_its_server() -> None:
    settings = load_settings(
        environ={"GATEHOUSE_RAG__VECTOR_BACKEND": "chroma", "GATEHOUSE_RAG__CHROMA_URL": CHROMA}
    )
    assert vector_backend(settings.rag) == ChromaBackend(CHROMA)
    assert not vector_backend(settings.rag).in_process


def test_chroma_url_alone_still_means_chroma(tmp_path: Path) -> None:
    # Configurations written before rag.vector_backend existed keep working.
    config = tmp_path / "gatehouse.yaml"
    config.write_text(f"rag:\n  chroma_url: {CHROMA}\n")
    settings = load_settings(config, environ={})
    assert settings.rag.vector_backend == "chroma"
    assert vector_backend(settings.rag) == ChromaBackend(CHROMA)


def test_embedded_chosen_outright_ignores_a_chroma_url() -> None:
    settings = load_settings(
        environ={"GATEHOUSE_RAG__VECTOR_BACKEND": "embedded", "GATEHOUSE_RAG__CHROMA_URL": CHROMA}
    )
    assert vector_backend(settings.rag) == EmbeddedBackend()


def test_chroma_without_its_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"rag\.chroma_url is not set"):
        load_settings(environ={"GATEHOUSE_RAG__VECTOR_BACKEND": "chroma"})


def test_an_unknown_backend_is_named(tmp_path: Path) -> None:
    config = tmp_path / "gatehouse.yaml"
    config.write_text("rag:\n  vector_backend: qdrant\n")
    with pytest.raises(ConfigError, match=r"rag\.vector_backend: .*'embedded' or 'chroma'"):
        load_settings(config, environ={})


def test_the_engine_defaults_to_the_embedded_backend(tmp_path: Path) -> None:
    engine = RagEngine(tmp_path, None)
    assert engine.vector_backend.in_process
    assert engine.vector_backend.builder("any") is None
