"""The judge loop (retries, failures reported, fatal refusals) and ``evaluate_answers`` on it."""

from __future__ import annotations

import json
import math

import pytest

from gatehouse.core.errors import (
    BudgetExceededError,
    NotFoundError,
    PermissionDeniedError,
    UpstreamError,
    ValidationFailedError,
)
from gatehouse.core.types import ChatCompletionRequest
from gatehouse.evals.answering import AnswerSettings, evaluate_answers
from gatehouse.evals.formats import LabelledQuestion
from gatehouse.evals.judge import Judge, JudgeUnavailable
from gatehouse.evals.rag_metrics import read_rating

from .eval_fakes import FixedAnswers, Reply, ScriptedChat, hit


async def test_a_readable_reply_is_taken_at_once() -> None:
    chat = ScriptedChat(['{"score": 5}'])
    judged = await Judge(chat, "judge-model").ask("rate it", read_rating)
    assert (judged.value, judged.reason, judged.attempts) == (1.0, None, 1)
    assert chat.calls[0].model == "judge-model"
    assert chat.calls[0].temperature == 0.0
    assert chat.calls[0].response_format is None


async def test_an_unreadable_reply_is_retried_with_the_reason() -> None:
    chat = ScriptedChat(["I like it a lot!", "```json\n{'score': 'four',}\n```"])
    judge = Judge(chat, "j", retries=2)
    judged = await judge.ask("rate it", read_rating)
    assert judged.value == pytest.approx(0.75)
    assert judged.attempts == 2
    retry = chat.calls[1].messages
    assert retry[2].role == "assistant"
    assert retry[2].content == "I like it a lot!"
    assert "could not be read" in str(retry[3].content)
    assert judge.usage.unreadable == 1
    assert judge.usage.calls == 2


async def test_retries_run_out_into_a_failure_with_a_reason_never_a_number() -> None:
    chat = ScriptedChat(["nope", "still nope", "{}"])
    judged = await Judge(chat, "j", retries=2).ask("rate it", read_rating)
    assert judged.value is None
    assert judged.attempts == 3
    assert judged.reason is not None
    assert "unreadable judge output" in judged.reason
    assert "it said '{}'" in judged.reason  # the last reply, to see what went wrong
    assert "after 3 attempts" in judged.reason


async def test_a_failed_call_is_retried_then_reported() -> None:
    chat = ScriptedChat([UpstreamError("upstream down"), '{"score": 3}'])
    judge = Judge(chat, "j", retries=1)
    assert (await judge.ask("q", read_rating)).value == 0.5
    assert judge.usage.failed_calls == 1
    failing = ScriptedChat([UpstreamError("down"), UpstreamError("still down")])
    judged = await Judge(failing, "j", retries=1).ask("q", read_rating)
    assert judged.value is None
    assert judged.reason is not None
    assert "judge call failed: still down" in judged.reason


@pytest.mark.parametrize(
    "error",
    [BudgetExceededError("budget spent"), PermissionDeniedError("no access to model j")],
)
async def test_a_refusal_no_retry_can_change_stops_the_evaluation(error: Exception) -> None:
    chat = ScriptedChat([error])
    with pytest.raises(JudgeUnavailable, match="refused"):
        await Judge(chat, "j", retries=3).ask("q", read_rating)
    assert len(chat.calls) == 1


async def test_json_mode_asks_for_a_json_object() -> None:
    chat = ScriptedChat(['{"score": 2}'])
    await Judge(chat, "j", json_mode=True).ask("q", read_rating)
    assert chat.calls[0].response_format == {"type": "json_object"}


# -- evaluate_answers with a scripted judge --

HITS = [
    hit("louvre#0", "The Louvre in Paris is the most visited museum in the world."),
    hit("tower#0", "The Eiffel Tower was finished in 1889."),
]
QUESTIONS = [
    LabelledQuestion("q1", "When was the Eiffel Tower finished?", ["1889"]),
    LabelledQuestion("q2", "Where is the Louvre?", ["Paris"]),
    LabelledQuestion("q3", "Who built it?", []),
    LabelledQuestion("q4", "What is the moon made of?", ["rock"]),
]
ANSWERS = FixedAnswers(
    {
        "When was the Eiffel Tower finished?": ('It was "finished in 1889" [2].', HITS, [2]),
        "Where is the Louvre?": ("Paris [1]", HITS, [1]),
        "Who built it?": ("Gustave Eiffel's company [2].", HITS, [2]),
        "What is the moon made of?": ("I don't know.", HITS, []),
    }
)


def judge_replies(request: ChatCompletionRequest) -> Reply:
    """A judge that answers each kind of prompt, garbling the ones about the Louvre."""
    prompt = str(request.messages[1].content)
    if "Louvre?" in prompt and "Rate how directly" in prompt:
        return "It's a great answer, I'd give it full marks"  # no number: unreadable every time
    if "Break the answer into" in prompt:
        return '```json\n{"claims": ["The tower was finished in 1889."],}\n```'
    if "Rate how directly" in prompt:
        return "Score: five"
    if "Compare the answer" in prompt:
        return json.dumps({"tp": ["1889"], "fp": [], "fn": []})
    count = int(prompt.split("exactly ")[1].split(" ")[0])
    return json.dumps({"verdicts": ["yes"] + ["no"] * (count - 1)})


async def test_answers_are_scored_failures_and_skips_counted_and_nothing_is_nan() -> None:
    chat = ScriptedChat(by_prompt=judge_replies)
    judge = Judge(chat, "judge", retries=1)
    run = await evaluate_answers(
        QUESTIONS, ANSWERS, AnswerSettings(collection="facts", top_k=2), judge=judge
    )
    items = {item.id: item for item in run.items}
    q1 = items["q1"].scores
    assert q1["exact_match"].value == 0.0
    # "it was finished in 1889": the marker [2] is no part of the answer; p = 1/5, r = 1
    assert q1["token_f1"].value == pytest.approx(1 / 3)
    assert q1["citation_validity"].value == 1.0
    assert q1["faithfulness"].value == 1.0
    assert q1["answer_relevancy"].value == 1.0
    assert q1["context_precision"].value == 1.0  # useful at rank 1 only
    assert q1["context_recall"].value == 1.0
    assert q1["answer_correctness"].value == 1.0
    assert items["q2"].scores["exact_match"].value == 1.0
    relevancy = items["q2"].scores["answer_relevancy"]
    assert relevancy.value is None
    assert relevancy.failed
    assert relevancy.reason is not None
    assert "after 2 attempts" in relevancy.reason
    # no reference: those metrics are skipped, not failed and not 0
    assert items["q3"].scores["exact_match"].value is None
    assert not items["q3"].scores["exact_match"].failed
    assert items["q3"].scores["exact_match"].reason == "no reference answer"
    # a refusal has no claims and cites nothing
    assert items["q4"].scores["faithfulness"].reason == "the answer declines to answer: no claims"
    assert items["q4"].scores["citation_validity"].value is None
    summary = run.summary
    assert summary["answer_relevancy"].failed == 1
    assert summary["answer_relevancy"].scored == 3
    assert summary["exact_match"].skipped == 1
    assert summary["faithfulness"].skipped == 1
    for metric in summary.values():
        assert metric.mean is None or math.isfinite(metric.mean)
    assert run.usage["judge_unreadable_replies"] == 2
    assert run.settings["judge"] == "judge"
    assert all(r.top_k == 2 for _, r in ANSWERS.requests)
    assert items["q1"].latency_ms


async def test_a_failed_answer_fails_every_metric_of_its_question() -> None:
    source = FixedAnswers({"Where is the Louvre?": UpstreamError("model crashed")})
    run = await evaluate_answers(
        [QUESTIONS[1]], source, AnswerSettings(collection="facts"), metrics=["exact_match"]
    )
    score = run.items[0].scores["exact_match"]
    assert score.failed
    assert score.reason == "answering failed: model crashed"
    assert run.summary["exact_match"].failed == 1


async def test_metric_choice_is_checked() -> None:
    with pytest.raises(ValueError, match="need a judge"):
        await evaluate_answers(
            QUESTIONS, ANSWERS, AnswerSettings(collection="c"), metrics=["faithfulness"]
        )
    with pytest.raises(ValueError, match="unknown answer metric"):
        await evaluate_answers(QUESTIONS, ANSWERS, AnswerSettings(collection="c"), metrics=["bleu"])


async def test_an_invalid_request_fails_its_question_only() -> None:
    source = FixedAnswers({"Where is the Louvre?": ValidationFailedError("too long")})
    run = await evaluate_answers([QUESTIONS[1]], source, AnswerSettings(collection="c"))
    assert run.metrics == ["exact_match", "token_f1", "citation_validity"]
    assert run.summary["exact_match"].failed == 1
    assert run.summary["citation_validity"].failed == 1


async def test_a_missing_collection_stops_the_run() -> None:
    source = FixedAnswers({"Where is the Louvre?": NotFoundError("collection 'c' not found")})
    with pytest.raises(NotFoundError):
        await evaluate_answers([QUESTIONS[1]], source, AnswerSettings(collection="c"))
