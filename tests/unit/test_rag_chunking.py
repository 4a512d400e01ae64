"""Chunkers: nothing lost or duplicated beyond the overlap; boundaries respected."""

from __future__ import annotations

import itertools

import numpy as np

from gatehouse.rag.chunking import (
    semantic_chunks,
    sentence_spans,
    structure_chunks,
    token_windows,
)
from gatehouse.rag.tokenizer import WordEstimate, tokenizer_for

WORDS = WordEstimate()
TEXT = " ".join(f"w{i}" for i in range(1000))


def test_token_windows_cover_everything_with_exact_overlap() -> None:
    pieces = token_windows(TEXT, WORDS, size=100, overlap=20)
    tokens = [TEXT[p.start : p.end].split() for p in pieces]
    assert all(len(t) <= 100 for t in tokens)
    for before, after in itertools.pairwise(tokens):
        assert before[-20:] == after[:20]
    rebuilt = tokens[0] + [w for t in tokens[1:] for w in t[20:]]
    assert rebuilt == TEXT.split()


def test_token_windows_use_the_embedding_tokenizer() -> None:
    minilm = tokenizer_for("local/minilm")
    text = "Tokenization counts word pieces: unbelievably " * 60
    for piece in token_windows(text, minilm, size=50, overlap=10):
        assert len(minilm.spans(text[piece.start : piece.end])) <= 50


def test_structure_chunks_split_at_headings_and_keep_the_path() -> None:
    text = "# Guide\n\nIntro text.\n\n## Install\n\nRun pip.\n\n## Use\n\nCall it.\n"
    pieces = structure_chunks(text, WORDS, size=6, overlap=0)
    texts = [text[p.start : p.end] for p in pieces]
    assert any(t.startswith("## Install") for t in texts)
    install = next(p for p in pieces if text[p.start : p.end].startswith("## Install"))
    assert install.heading == "Guide > Install"
    assert "Run pip." in text[install.start : install.end]
    assert not any("Install" in t and "Call it" in t for t in texts)  # sections stay apart


def test_structure_chunks_lose_no_words() -> None:
    paragraphs = [" ".join(f"p{i}w{j}." for j in range(30)) for i in range(12)]
    text = "\n\n".join(paragraphs)
    pieces = structure_chunks(text, WORDS, size=50, overlap=5)
    assert all(len(WORDS.spans(text[p.start : p.end])) <= 50 for p in pieces)
    covered = set()
    for p in pieces:
        covered.update(text[p.start : p.end].split())
    assert covered == set(text.split())
    # Paragraph boundaries are respected: a chunk never starts mid-paragraph
    # unless the paragraph alone is too long (none is here).
    assert all(text[p.start : p.start + 1] == "p" for p in pieces)


def test_semantic_chunks_split_where_similarity_drops() -> None:
    text = "Cats purr. Cats nap. Stocks fell. Stocks rose."
    spans = sentence_spans(text)
    cat, stock = [1.0, 0.0], [0.0, 1.0]
    vectors = np.asarray([cat, cat, stock, stock], dtype=np.float32)
    pieces = semantic_chunks(text, WORDS, 100, spans, vectors, threshold=0.5)
    assert [text[p.start : p.end] for p in pieces] == [
        "Cats purr. Cats nap.",
        "Stocks fell. Stocks rose.",
    ]
