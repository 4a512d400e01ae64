"""Analyzers, BM25, fusion, MMR and filters: pure logic, no I/O."""

from __future__ import annotations

import numpy as np
import pytest

from gatehouse.core.errors import ValidationFailedError
from gatehouse.rag import fusion
from gatehouse.rag.filters import compile_filter
from gatehouse.rag.keyword import BM25Index
from gatehouse.rag.retrieval import mmr
from gatehouse.rag.text import analyze, detect_language


def test_english_terms_are_stemmed_and_stopwords_dropped() -> None:
    assert analyze("What are the running dogs?") == ["run", "dog"]


def test_arabic_is_detected_normalised_and_stemmed() -> None:
    text = "من هو عبد المطلب بن هاشم؟"
    assert detect_language(text) == "arabic"
    terms = analyze(text)
    assert "من" not in terms
    assert "هو" not in terms
    # Alef variants fold together, so hamza spelling does not split a term.
    assert analyze("أحمد") == analyze("احمد")


def test_bm25_ranks_matching_rows_and_skips_non_matches() -> None:
    index = BM25Index()
    index.add([(1, analyze("cats purr softly")), (2, analyze("dogs bark")), (3, analyze("cat"))])
    hits = index.search("cat", 10)
    assert [rowid for rowid, _ in hits] == [3, 1]  # shorter row first; row 2 has no match
    index.remove([3])
    assert [rowid for rowid, _ in index.search("cat", 10)] == [1]
    assert index.search("cat", 10, allowed={2}) == []


def test_bm25_reuses_a_query_s_scores_only_while_the_index_is_unchanged() -> None:
    index = BM25Index()
    index.add([(1, analyze("cats purr softly")), (2, analyze("dogs bark"))])
    query = {"cat": 2.0, "purr": 1.0}
    first = index.search_terms(query, 10)
    assert index.search_terms(query, 10, allowed={2}) == []  # filtered: the kept scores stay
    assert index.search_terms(query, 10) == first
    assert index.score_rows(query, [2, 1]) == [0.0, first[0][1]]
    index.add([(3, analyze("cat"))])  # changes every row's idf and length norm
    fresh = BM25Index()
    fresh.add([(1, analyze("cats purr softly")), (2, analyze("dogs bark")), (3, analyze("cat"))])
    assert index.search_terms(query, 10) == fresh.search_terms(query, 10)
    assert index.score_rows(query, [1, 3]) == fresh.score_rows(query, [1, 3])


def test_rrf_rewards_agreement() -> None:
    fused = fusion.rrf({"a": [("x", 9.0), ("y", 8.0)], "b": [("y", 1.0), ("z", 0.5)]})
    assert fused[0][0] == "y"


def test_score_fusion_normalises_each_list() -> None:
    fused = fusion.score_fusion(
        {"a": [("x", 100.0), ("y", 0.0)], "b": [("y", 0.9), ("x", 0.1)]}, {"a": 0.25, "b": 0.75}
    )
    assert [key for key, _ in fused] == ["y", "x"]


def test_dense_weight_follows_vocabulary_coverage() -> None:
    dense_weight = fusion.dense_weight
    assert dense_weight(0.0, 1.0) == 0.0
    assert dense_weight(0.2, 1.0) == 0.0
    assert 0 < dense_weight(0.4, 1.0) < dense_weight(0.9, 1.0)
    assert dense_weight(0.9, 1.0) == dense_weight(1.0, 1.0)


def test_mmr_prefers_novelty() -> None:
    vectors = np.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    hits = [(10, 1.0), (11, 0.99), (12, 0.5)]
    assert [r for r, _ in mmr(hits, vectors, 2, lambda_=0.5)] == [10, 12]
    assert [r for r, _ in mmr(hits, vectors, 2, lambda_=1.0)] == [10, 11]


def test_filters_evaluate_chroma_syntax() -> None:
    where = {"$and": [{"lang": "en"}, {"year": {"$gte": 2020}}, {"tag": {"$in": ["a", "b"]}}]}
    predicate = compile_filter(where, {"lang", "year", "tag"})
    assert predicate({"lang": "en", "year": 2021, "tag": "a"})
    assert not predicate({"lang": "en", "year": 2019, "tag": "a"})
    assert not predicate({"lang": "en", "tag": "a"})  # a missing field never matches $gte
    assert compile_filter({"$or": [{"lang": "fr"}, {"lang": {"$ne": "en"}}]}, {"lang"})({})


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ({"colour": "red"}, "unknown filter field 'colour'"),
        ({"lang": {"$regex": "x"}}, "unknown operator $regex"),
        ({"$and": {}}, "$and takes a non-empty list"),
        ({"lang": {"$in": "en"}}, "$in takes a list"),
        ({"$nope": []}, "unknown filter operator"),
        ({}, "may not be empty"),
    ],
)
def test_bad_filters_are_rejected(where: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationFailedError, match=message.replace("$", r"\$")):
        compile_filter(where, {"lang"})
