"""Chain of thought, tree of thought, few-shot and compression on scripted answers."""

from __future__ import annotations

import json

import httpx
import pytest

from gatehouse.client import AsyncClient, Client, RateLimitError, RetryPolicy
from gatehouse.core.types import ChatCompletionRequest, ChatMessage, EmbeddingRequest
from gatehouse.prompts import (
    DEBUGGING,
    PROBLEM_SOLVING,
    ChainOfThought,
    Compressor,
    Example,
    FewShotSelector,
    TreeOfThought,
    arun,
    count_tokens,
    extract_answer,
    parse_score,
    run,
)
from gatehouse.prompts._flow import ModelAnswer, ModelCall
from gatehouse.prompts.fewshot import choose, example_tokens

from .prompt_fakes import chat_texts, completion, drive, embed_calls, embeddings

# -- chain of thought --


@pytest.mark.parametrize(
    ("text", "reasoning", "answer", "marked"),
    [
        (
            "Step 1: add.\nStep 2: check.\nFinal answer: 42",
            "Step 1: add.\nStep 2: check.",
            "42",
            True,
        ),
        ("**Final Answer:** 42", "", "42", True),
        ("Work.\n\n## Final answer\nParis", "Work.", "Paris", True),
        ("Therefore, the answer is 3", "", "3", True),
        ("Answer: 1\nno, recheck\nFinal answer: 2", "Answer: 1\nno, recheck", "2", True),
        ("<think>hmm, 6 * 7</think>\n42", "hmm, 6 * 7", "42", False),
        (
            "The answer depends on x.\n\nSo it is 9.",
            "The answer depends on x.",
            "So it is 9.",
            False,
        ),
        ("only this", "", "only this", False),
        ("", "", "", False),
        ("Final answer:", "", "Final answer:", False),
    ],
)
def test_extract_answer_is_robust_to_missing_and_odd_markers(
    text: str, reasoning: str, answer: str, marked: bool
) -> None:
    found = extract_answer(text)
    assert (found.reasoning, found.answer, found.marker_found) == (reasoning, answer, marked)


def test_chain_of_thought_prompts_the_steps_and_reads_the_answer() -> None:
    calls: list[ModelCall] = []
    result = drive(
        DEBUGGING.flow("The test fails only on Mondays.", context="uses date.today()"),
        lambda call: completion("Hypothesis: the date.\nFinal answer: inject the clock", 30),
        calls,
    )
    assert result.answer == "inject the clock"
    assert result.reasoning == "Hypothesis: the date."
    assert result.tokens == 30
    (request,) = chat_texts(calls)
    system, user = request.messages
    assert "1. Describe the observed behaviour" in system.text()
    assert "Final answer:" in system.text()
    assert user.text().endswith("Context:\nuses date.today()")
    assert request.temperature == 0


def test_custom_chain_of_thought_numbers_its_steps() -> None:
    cot = ChainOfThought.custom(["Read the contract.", "List the deadlines."], model="m")
    system = cot.messages("When is the payment due?")[0].text()
    assert "1. Read the contract.\n2. List the deadlines." in system
    assert cot.request("q").model == "m"
    with pytest.raises(ValueError, match="at least one step"):
        ChainOfThought.custom([])
    assert PROBLEM_SOLVING.steps[0].startswith("Restate")


# -- tree of thought --


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("8/10", 0.8),
        ("Score: 7", 0.7),
        ("score is **9** because it is direct", 0.9),
        ("I rate it eight out of ten", 0.8),
        ("80%", 0.8),
        ("Seven.", 0.7),
        ("Score: 7/10, it has 3 steps", 0.7),
        ("Step 3 scores 6", 0.6),
        ("12/10", 1.0),
        ("Score: -4", 0.4),
        ("3/0", None),
        ("no idea", None),
        ("no one knows", None),
        ("Score: N", None),
        ("", None),
    ],
)
def test_parse_score_reads_what_models_write(text: str, score: float | None) -> None:
    assert parse_score(text) == score


def tot_answers(call: ModelCall) -> ModelAnswer:
    """Proposals are numbered by their seed; a proposal's score comes from its text."""
    assert isinstance(call, ChatCompletionRequest)
    system = call.messages[0].text()
    if "propose" in system:
        return completion(f"idea-{call.seed}", 5)
    last = call.messages[-1].text().splitlines()[-1]  # the newest step
    seed = int(last.rsplit("-", 1)[1])
    scores = {1000: "Score: 3", 1001: "9/10", 1002: "garbled", 2000: "Score: 8"}
    return completion(scores.get(seed, "Score: 5"), 5)


def test_tree_of_thought_expands_the_best_and_returns_the_tree() -> None:
    tot = TreeOfThought(breadth=3, keep=1, depth=2, max_calls=100)
    tree = drive(tot.flow("Plan a trip"), tot_answers)
    level1 = tree.root.children
    assert [n.thought for n in level1] == ["idea-1000", "idea-1001", "idea-1002"]
    assert [n.score for n in level1] == [0.3, 0.9, None]
    assert level1[2].score_text == "garbled"
    # Only the best (9/10) was expanded; the unscored one ranks last.
    assert [n.expanded for n in level1] == [False, True, False]
    assert len(level1[1].children) == 3
    assert [n.thought for n in tree.best_path] == ["idea-1001", "idea-2000"]
    assert tree.best is not None
    assert tree.best.score == 0.8
    assert tree.calls == 12  # 6 proposals + 6 scores
    assert tree.tokens == 60
    assert tree.stopped == "depth"
    assert sum(1 for _ in tree.root.walk()) == 7


def test_tree_of_thought_stops_at_its_call_and_token_budgets() -> None:
    tree = drive(TreeOfThought(breadth=3, depth=3, max_calls=4).flow("p"), tot_answers)
    assert tree.calls == 4
    assert tree.stopped == "max_calls"
    tree = drive(TreeOfThought(breadth=3, depth=3, max_tokens=12).flow("p"), tot_answers)
    assert tree.tokens >= 12
    assert tree.calls == 3
    assert tree.stopped == "max_tokens"


def test_tree_of_thought_survives_empty_proposals() -> None:
    tree = drive(TreeOfThought(depth=2).flow("p"), lambda call: completion("   ", 1))
    assert tree.root.children == []
    assert tree.best_path == []
    assert tree.stopped == "no_candidates"
    with pytest.raises(ValueError, match="at least 1"):
        TreeOfThought(breadth=0)


# -- few-shot --

EXAMPLES = [
    Example("2 + 2", "4"),
    Example("capital of France", "Paris"),
    Example("3 + 5", "8"),
    Example("a much longer arithmetic question " * 20, "42"),
]
# Axis 0 is arithmetic, axis 1 geography.
VECTORS = {
    "2 + 2": [1.0, 0.0],
    "capital of France": [0.0, 1.0],
    "3 + 5": [0.9, 0.1],
    EXAMPLES[3].input: [1.0, 0.05],
    "7 + 1": [1.0, 0.02],
}


def embed_answer(call: ModelCall) -> ModelAnswer:
    assert isinstance(call, EmbeddingRequest)
    return embeddings([VECTORS[text] for text in call.texts()])


def test_few_shot_picks_by_similarity_within_the_budget() -> None:
    budget = example_tokens(EXAMPLES[0]) + example_tokens(EXAMPLES[2])
    selector = FewShotSelector(EXAMPLES, token_budget=budget, embedding_model="e")
    calls: list[ModelCall] = []
    chosen = drive(selector.flow("7 + 1"), embed_answer, calls)
    # The long example is the most similar but does not fit; most similar last.
    assert chosen == [EXAMPLES[2], EXAMPLES[0]]
    assert embed_calls(calls)[0].model == "e"
    assert len(embed_calls(calls)[0].texts()) == 5
    # The examples' embeddings are kept: the next query embeds only itself.
    calls.clear()
    drive(selector.flow("7 + 1"), embed_answer, calls)
    assert embed_calls(calls)[0].texts() == ["7 + 1"]
    messages = selector.messages("7 + 1", chosen, system="Answer briefly.")
    assert [m.role for m in messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert messages[-1].text() == "7 + 1"


def test_choose_respects_budget_and_count() -> None:
    assert choose([0.9, 0.8, 0.7], [10, 10, 10], budget=20) == [1, 0]
    assert choose([0.9, 0.8, 0.7], [30, 10, 10], budget=20) == [2, 1]
    assert choose([0.9, 0.8, 0.7], [1, 1, 1], budget=100, max_examples=1) == [0]
    assert choose([], [], budget=10) == []


def test_an_embeddings_answer_of_the_wrong_size_is_an_error() -> None:
    selector = FewShotSelector(EXAMPLES[:2])
    with pytest.raises(ValueError, match="does not match"):
        drive(selector.flow("q"), lambda call: embeddings([[1.0, 0.0]]))


# -- compression --


def history(turns: int) -> list[ChatMessage]:
    messages = [ChatMessage(role="system", content="You are terse.")]
    for i in range(turns):
        messages.append(ChatMessage(role="user", content=f"question {i} " + "words " * 40))
        messages.append(ChatMessage(role="assistant", content=f"answer {i} " + "words " * 40))
    return messages


def test_a_history_that_fits_is_left_alone_without_a_call() -> None:
    messages = history(1)
    calls: list[ModelCall] = []
    result = drive(Compressor(budget=10_000).flow(messages), lambda c: completion("x"), calls)
    assert result.messages == messages
    assert result.summary is None
    assert calls == []


def test_compression_keeps_system_and_recent_turns_and_summarises_the_middle() -> None:
    messages = history(10)
    budget = 400
    calls: list[ModelCall] = []
    result = drive(
        Compressor(budget=budget, keep_recent=4, summary_tokens=50).flow(messages),
        lambda call: completion("They asked ten questions."),
        calls,
    )
    assert result.messages[0] == messages[0]
    assert result.messages[1].role == "system"
    assert result.messages[1].text().endswith("They asked ten questions.")
    assert result.messages[2:] == messages[-4:]
    assert result.summarised == len(messages) - 1 - 4
    assert result.tokens_before == count_tokens(messages) > budget
    assert result.tokens_after == count_tokens(result.messages) <= budget
    assert result.fits
    (request,) = chat_texts(calls)
    transcript = request.messages[1].text()
    assert transcript.startswith("user: question 0")
    assert "answer 7" in transcript
    assert "question 8" not in transcript  # kept verbatim, not summarised
    assert request.max_tokens == 50


def test_a_tight_budget_keeps_fewer_recent_turns_but_always_the_last() -> None:
    messages = history(6)
    result = drive(
        Compressor(budget=150, keep_recent=6, summary_tokens=20).flow(messages),
        lambda call: completion("short"),
    )
    assert result.messages[-1] == messages[-1]
    assert len(result.messages) < 2 + 6


# -- drivers: the same flows through a real Client over a mock transport --


def test_run_drives_a_flow_through_the_client_and_passes_errors_in() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=completion("Because.\nFinal answer: yes").model_dump())

    with Client("http://gh.test", transport=httpx.MockTransport(handler)) as gh:
        assert run(PROBLEM_SOLVING.flow("Is 2 even?"), gh).answer == "yes"

    def limited(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {
                "message": "slow down",
                "type": "rate_limit_error",
                "code": "rate_limit_exceeded",
            }
        }
        return httpx.Response(429, json=body)

    with (
        Client(
            "http://gh.test",
            transport=httpx.MockTransport(limited),
            retry=RetryPolicy(max_attempts=1),
        ) as gh,
        pytest.raises(RateLimitError),
    ):
        run(PROBLEM_SOLVING.flow("Is 2 even?"), gh)


async def test_arun_drives_chat_and_embedding_calls_through_the_async_client() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/embeddings":
            texts = json.loads(request.content)["input"]
            return httpx.Response(200, json=embeddings([VECTORS[t] for t in texts]).model_dump())
        return httpx.Response(200, json=completion("Final answer: 8").model_dump())

    async with AsyncClient("http://gh.test", transport=httpx.MockTransport(handler)) as gh:
        selector = FewShotSelector(EXAMPLES[:3], token_budget=1000)
        chosen = await arun(selector.flow("7 + 1"), gh)
        assert chosen[-1] == EXAMPLES[0]
        result = await arun(PROBLEM_SOLVING.flow("7 + 1"), gh)
        assert result.answer == "8"
