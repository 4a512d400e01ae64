"""Opt-in query rewriting through the gateway: condensing, multi-query, HyDE."""

from __future__ import annotations

from pathlib import Path

from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.rag import AnswerRequest, CollectionSpec, DocumentIn, RagEngine
from gatehouse.rag.models import HistoryMessage

from .rag_fakes import BagOfWords, ScriptedChat

DOCS = [
    DocumentIn(id="cats", text="Cats purr and sleep all day."),
    DocumentIn(id="tax", text="Income tax returns are due in April."),
]


async def engine_with(tmp_path: Path, reply: str) -> tuple[RagEngine, ScriptedChat]:
    chat = ScriptedChat(reply)
    gateway = Gateway(
        ModelRegistry([chat, BagOfWords()], {"default": "test/scripted"}), started_at=0
    )
    rag = RagEngine(tmp_path, gateway)
    rag.create_collection(CollectionSpec(name="kb", embedding_model="test/bow"))
    await rag.add_documents("kb", DOCS)
    return rag, chat


async def test_condensing_searches_the_standalone_question(tmp_path: Path) -> None:
    rag, chat = await engine_with(tmp_path, "When are income tax returns due?")
    history = [
        HistoryMessage(role="user", content="I need to file my income tax."),
        HistoryMessage(role="assistant", content="Sure."),
    ]
    condensed = await rag.answer(
        "kb", AnswerRequest(query="when is it due?", history=history, condense=True)
    )
    assert "user: I need to file my income tax." in chat.prompts[0]
    assert condensed.results[0].document_id == "tax"


async def test_multi_query_fuses_the_phrasings(tmp_path: Path) -> None:
    rag, chat = await engine_with(tmp_path, "1. income tax deadline\n2. cats purring")
    hits = await rag.search("kb", "zzz unrelated", top_k=2, expansion="multi_query")
    assert {h.document_id for h in hits} == {"cats", "tax"}
    assert len(chat.prompts) == 1


async def test_hyde_embeds_a_hypothetical_answer(tmp_path: Path) -> None:
    rag, _ = await engine_with(tmp_path, "Cats purr when content and sleep all day.")
    hits = await rag.search("kb", "qqq", top_k=1, mode="dense", expansion="hyde")
    assert hits[0].document_id == "cats"


async def test_llm_reranker_orders_by_the_model_grade(tmp_path: Path) -> None:
    from gatehouse.rag.rerank import parse_grade

    rag, chat = await engine_with(tmp_path, "7")
    hits = await rag.search("kb", "cats", top_k=2, rerank="llm")
    assert [h.score for h in hits] == [7.0, 7.0]
    assert hits[0].document_id == "cats"  # ties keep retrieval order
    assert len(chat.prompts) == 2
    assert (parse_grade("Grade: 12"), parse_grade("none"), parse_grade("3.5")) == (10.0, 0.0, 3.5)
