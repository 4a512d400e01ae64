"""``eval answers``: ask a collection labelled questions, score the answers.

Each question is answered by the RAG engine (in process, as the caller, or by
a gatehouse server over HTTP with the caller's key); the answer is scored by
the deterministic metrics (:mod:`gatehouse.evals.answers`) and, given a
judge, by the judged ones (:mod:`gatehouse.evals.rag_metrics`).

A metric that does not apply to a question is skipped with the reason (no
reference answer, a refusal has no claims, nothing retrieved); one the judge
could not produce is a failure with the reason. Neither is a 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from gatehouse.core.errors import GatehouseError
from gatehouse.core.principal import LOCAL, Principal
from gatehouse.evals.answers import (
    CitedChunk,
    check_citations,
    exact_match,
    strip_citations,
    token_f1,
)
from gatehouse.evals.formats import LabelledQuestion
from gatehouse.evals.judge import FATAL_ERRORS, Judge, Judged
from gatehouse.evals.rag_metrics import (
    JUDGE_METRICS,
    average_precision,
    claims_prompt,
    context_precision_prompt,
    context_recall_prompt,
    correctness_prompt,
    faithfulness_prompt,
    read_claims,
    read_classification,
    read_rating,
    read_verdicts,
    relevancy_prompt,
    sentences,
    supported_share,
)
from gatehouse.evals.results import EvalRun, ItemResult, Score
from gatehouse.rag.answer import is_refusal
from gatehouse.rag.models import AnswerRequest, AnswerResponse

DETERMINISTIC_METRICS = ("exact_match", "token_f1", "citation_validity")
ANSWER_METRICS = DETERMINISTIC_METRICS + JUDGE_METRICS


class AnswerSource(Protocol):
    """Something that answers a question from a collection, as the caller."""

    async def answer(self, collection: str, request: AnswerRequest) -> AnswerResponse: ...


@dataclass(frozen=True, slots=True)
class EngineSource:
    """The in-process RAG engine, answering as ``caller``."""

    engine: _Engine
    caller: Principal = LOCAL

    async def answer(self, collection: str, request: AnswerRequest) -> AnswerResponse:
        return await self.engine.answer(collection, request, caller=self.caller)


class _Engine(Protocol):
    async def answer(
        self, name: str, request: AnswerRequest, *, caller: Principal = ...
    ) -> AnswerResponse: ...


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    collection: str
    model: str | None = None
    top_k: int | None = None
    max_tokens: int | None = None
    concurrency: int = 1


async def evaluate_answers(
    questions: Sequence[LabelledQuestion],
    source: AnswerSource,
    settings: AnswerSettings,
    *,
    metrics: Sequence[str] | None = None,
    judge: Judge | None = None,
    name: str = "answers",
    progress: Callable[[ItemResult], None] | None = None,
) -> EvalRun:
    """Answer and score every question; the run's summary is computed.

    ``metrics`` defaults to every metric with a judge, the deterministic ones without;
    ``progress`` hears of each question as it is done.
    """
    if metrics is None:
        metrics = ANSWER_METRICS if judge is not None else DETERMINISTIC_METRICS
    unknown = [m for m in metrics if m not in ANSWER_METRICS]
    if unknown:
        raise ValueError(f"unknown answer metric {unknown[0]!r}")
    if judge is None and any(m in JUDGE_METRICS for m in metrics):
        raise ValueError("the judged metrics need a judge model")
    gate = asyncio.Semaphore(max(settings.concurrency, 1))

    async def one(question: LabelledQuestion) -> ItemResult:
        async with gate:
            item = await _evaluate_one(question, source, settings, list(metrics), judge)
        if progress is not None:
            progress(item)
        return item

    tasks = [asyncio.create_task(one(q)) for q in questions]
    try:
        items = await asyncio.gather(*tasks)
    except BaseException:
        # A refusal that stops the run: let the questions still in flight end first.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    usage = {}
    if judge is not None:
        u = judge.usage
        usage = {
            "judge_calls": u.calls,
            "judge_prompt_tokens": u.prompt_tokens,
            "judge_completion_tokens": u.completion_tokens,
            "judge_unreadable_replies": u.unreadable,
            "judge_failed_calls": u.failed_calls,
        }
    run = EvalRun(
        kind="answers",
        name=name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        settings={
            "collection": settings.collection,
            "model": settings.model,
            "top_k": settings.top_k,
            "judge": judge.model if judge else None,
            "judge_retries": judge.retries if judge else None,
        },
        metrics=list(metrics),
        usage=usage,
        items=list(items),
    )
    return run.summarise()


async def _evaluate_one(
    question: LabelledQuestion,
    source: AnswerSource,
    settings: AnswerSettings,
    metrics: list[str],
    judge: Judge | None,
) -> ItemResult:
    item = ItemResult(
        id=question.id,
        input=question.question,
        expected=question.references[0] if question.references else None,
    )
    request = AnswerRequest(
        query=question.question,
        model=settings.model,
        top_k=settings.top_k,
        max_tokens=settings.max_tokens,
    )
    started = time.perf_counter()
    try:
        response = await source.answer(settings.collection, request)
    except FATAL_ERRORS:
        raise
    except GatehouseError as exc:
        reason = f"answering failed: {exc.message}"
        item.scores = {m: Score.of(None, reason, failed=True) for m in metrics}
        return item
    item.latency_ms = [(time.perf_counter() - started) * 1000]
    item.output = response.answer
    scorer = _Scorer(question, response, judge)
    for metric in metrics:
        item.scores[metric] = await scorer.score(metric)
    item.notes = scorer.notes
    return item


class _Scorer:
    """The metrics of one answered question; notes what the judge said along the way."""

    def __init__(
        self, question: LabelledQuestion, response: AnswerResponse, judge: Judge | None
    ) -> None:
        self.question = question
        self.response = response
        self.judge = judge
        self.contexts = [hit.text for hit in response.results]
        self.notes: list[str] = []
        self._claims: Judged[list[str]] | None = None

    async def score(self, metric: str) -> Score:
        method: Callable[[], Awaitable[Score]] = getattr(self, f"_{metric}")
        return await method()

    @property
    def _reference(self) -> str | None:
        return self.question.references[0] if self.question.references else None

    async def _exact_match(self) -> Score:
        if not self.question.references:
            return Score.of(None, "no reference answer")
        return Score.of(
            exact_match(strip_citations(self.response.answer), self.question.references)
        )

    async def _token_f1(self) -> Score:
        if not self.question.references:
            return Score.of(None, "no reference answer")
        return Score.of(token_f1(strip_citations(self.response.answer), self.question.references))

    async def _citation_validity(self) -> Score:
        cited = [CitedChunk(c.index, c.chunk_id) for c in self.response.citations]
        context = {hit.chunk_id: hit.text for hit in self.response.results}
        check = check_citations(self.response.answer, cited, context)
        self.notes += check.problems
        return Score.of(check.score, "the answer cites nothing")

    async def _faithfulness(self) -> Score:
        if is_refusal(self.response.answer):
            return Score.of(None, "the answer declines to answer: no claims")
        if not self.contexts:
            return Score.of(None, "nothing was retrieved")
        claims = await self._extracted_claims()
        if claims.value is None:
            return Score.of(None, claims.reason, failed=True)
        if not claims.value:
            return Score.of(None, "the judge found no claims in the answer")
        assert self.judge is not None
        count = len(claims.value)
        verdicts = await self.judge.ask(
            faithfulness_prompt(self.contexts, claims.value), lambda t: read_verdicts(t, count)
        )
        if verdicts.value is None:
            return Score.of(None, verdicts.reason, failed=True)
        for claim, ok in zip(claims.value, verdicts.value, strict=True):
            self.notes.append(f"claim {'supported' if ok else 'NOT supported'}: {claim}")
        return Score.of(supported_share(verdicts.value))

    async def _extracted_claims(self) -> Judged[list[str]]:
        if self._claims is None:
            assert self.judge is not None
            self._claims = await self.judge.ask(
                claims_prompt(self.question.question, self.response.answer), read_claims
            )
        return self._claims

    async def _answer_relevancy(self) -> Score:
        assert self.judge is not None
        rating = await self.judge.ask(
            relevancy_prompt(self.question.question, self.response.answer), read_rating
        )
        return Score.of(rating.value, rating.reason, failed=rating.value is None)

    async def _context_precision(self) -> Score:
        reference = self._reference
        if reference is None:
            return Score.of(None, "no reference answer")
        if not self.contexts:
            return Score.of(None, "nothing was retrieved")
        assert self.judge is not None
        count = len(self.contexts)
        useful = await self.judge.ask(
            context_precision_prompt(self.question.question, reference, self.contexts),
            lambda t: read_verdicts(t, count),
        )
        if useful.value is None:
            return Score.of(None, useful.reason, failed=True)
        return Score.of(average_precision(useful.value))

    async def _context_recall(self) -> Score:
        reference = self._reference
        if reference is None:
            return Score.of(None, "no reference answer")
        if not self.contexts:
            return Score.of(0.0)  # nothing retrieved: no reference sentence is covered
        assert self.judge is not None
        parts = sentences(reference)
        attributed = await self.judge.ask(
            context_recall_prompt(self.contexts, parts), lambda t: read_verdicts(t, len(parts))
        )
        if attributed.value is None:
            return Score.of(None, attributed.reason, failed=True)
        return Score.of(supported_share(attributed.value))

    async def _answer_correctness(self) -> Score:
        reference = self._reference
        if reference is None:
            return Score.of(None, "no reference answer")
        assert self.judge is not None
        judged = await self.judge.ask(
            correctness_prompt(self.question.question, self.response.answer, reference),
            read_classification,
        )
        if judged.value is None:
            return Score.of(None, judged.reason, failed=True)
        score = judged.value.score
        return Score.of(score, "the judge listed no statement at all", failed=score is None)
