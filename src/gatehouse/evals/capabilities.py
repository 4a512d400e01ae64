"""Capability tests: small built-in suites with checkable answers, run N times each.

Suites: ``reasoning``, ``coding`` (the model's code runs in the sandbox
against assertions), ``math``, ``extraction`` and ``instruction`` (following
format instructions). Each item is asked ``repeat`` times through the gateway
as the caller; per item the run records:

- ``pass_rate``: passing replies over completed calls (a call that failed is
  not a wrong answer: it is noted, and when every call failed the item's
  pass rate is a failure, not a 0);
- ``consistency``: the share of completed calls whose extracted answer (the
  number, the word, the test outcome) is the most common one; it needs at
  least two completed calls and is skipped otherwise;
- the latency of every call.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gatehouse.core.errors import GatehouseError
from gatehouse.core.types import ChatCompletionRequest, ChatMessage
from gatehouse.evals.checks import (
    Check,
    CodeTests,
    Contains,
    JsonFields,
    NumberAnswer,
    Rule,
    Verdict,
    WordAnswer,
)
from gatehouse.evals.judge import FATAL_ERRORS, ChatClient
from gatehouse.evals.results import EvalRun, ItemResult, Score
from gatehouse.evals.sandbox import network_isolation

CAPABILITY_METRICS = ("pass_rate", "consistency")
SYSTEM = "You are a helpful assistant. Follow the instructions exactly and answer briefly."


@dataclass(frozen=True, slots=True)
class CapabilityItem:
    id: str
    suite: str
    prompt: str
    check: Check
    max_tokens: int = 48


def _item(suite: str, n: int, prompt: str, check: Check, max_tokens: int = 48) -> CapabilityItem:
    return CapabilityItem(f"{suite}-{n}", suite, prompt, check, max_tokens)


_CODE = "Reply with only the Python code of the function, in a ```python block."

SUITES: dict[str, tuple[CapabilityItem, ...]] = {
    "reasoning": (
        _item(
            "reasoning",
            1,
            "Tom is taller than Ann. Ann is taller than Bob. Who is the shortest? "
            "Answer with one name.",
            WordAnswer(("Bob",), ("Tom", "Ann")),
        ),
        _item(
            "reasoning",
            2,
            "All bloops are razzies and all razzies are lazzies. Are all bloops lazzies? "
            "Answer yes or no.",
            WordAnswer(("yes",), ("no",)),
        ),
        _item(
            "reasoning",
            3,
            "Today is Friday. What day of the week will it be in two days? Answer with one word.",
            WordAnswer(("Sunday",), ("Saturday", "Monday", "Friday")),
        ),
        _item(
            "reasoning",
            4,
            "A box holds only red and blue balls. It has 3 red balls and twice as many blue "
            "balls. How many balls are in the box? Answer with a number.",
            NumberAnswer(9),
        ),
    ),
    "math": (
        _item("math", 1, "What is 17 * 23? Answer with the number only.", NumberAnswer(391)),
        _item(
            "math", 2, "What is 144 divided by 12? Answer with the number only.", NumberAnswer(12)
        ),
        _item("math", 3, "What is 15% of 200? Answer with the number only.", NumberAnswer(30)),
        _item(
            "math",
            4,
            "What is the sum of the whole numbers from 1 to 10? Answer with the number only.",
            NumberAnswer(55),
        ),
    ),
    "extraction": (
        _item(
            "extraction",
            1,
            "Extract the email address from this text and reply with it only: "
            "'For refunds, write to billing@example.org before Friday.'",
            Contains("billing@example.org"),
        ),
        _item(
            "extraction",
            2,
            "From 'Order 4521 shipped on 2024-03-05 to Lisbon', what is the order number? "
            "Answer with the number only.",
            NumberAnswer(4521),
        ),
        _item(
            "extraction",
            3,
            'Reply with a JSON object with the keys "name" and "age" for this sentence: '
            "'Maria is 34 years old.'",
            JsonFields({"name": "Maria", "age": 34}),
        ),
        _item(
            "extraction",
            4,
            "Which city did the order ship to? 'Order 4521 shipped on 2024-03-05 to Lisbon.' "
            "Answer with the city only.",
            WordAnswer(("Lisbon",)),
        ),
    ),
    "instruction": (
        _item(
            "instruction",
            1,
            "Reply with exactly the word OK in upper case and nothing else.",
            Rule("exactly 'OK'", lambda text: text.strip().rstrip(".") == "OK"),
        ),
        _item(
            "instruction",
            2,
            "Name three colours, all in lower case, separated by commas, and nothing else.",
            Rule(
                "three lower-case words separated by commas",
                lambda text: (
                    len([p for p in text.split(",") if p.strip()]) == 3
                    and text == text.lower()
                    and all(p.strip().isalpha() for p in text.rstrip(".").split(","))
                ),
            ),
        ),
        _item(
            "instruction",
            3,
            "Write one sentence of exactly five words about the sea.",
            Rule("one sentence of five words", lambda text: len(text.split()) == 5),
        ),
        _item(
            "instruction",
            4,
            "Answer in upper case only: what is the capital of France?",
            Rule(
                "upper case, names Paris",
                lambda text: "PARIS" in text and text == text.upper(),
            ),
        ),
    ),
    "coding": (
        _item(
            "coding",
            1,
            f"Write a Python function add(a, b) that returns the sum of a and b. {_CODE}",
            CodeTests("add", "assert add(2, 3) == 5\nassert add(-1, 1) == 0"),
            max_tokens=160,
        ),
        _item(
            "coding",
            2,
            "Write a Python function is_palindrome(s) that returns True when the string s reads "
            f"the same backwards, ignoring case. {_CODE}",
            CodeTests(
                "is_palindrome",
                "assert is_palindrome('Level')\nassert not is_palindrome('abc')\n"
                "assert is_palindrome('')",
            ),
            max_tokens=160,
        ),
        _item(
            "coding",
            3,
            "Write a Python function factorial(n) that returns n! for a non-negative integer n. "
            f"{_CODE}",
            CodeTests(
                "factorial",
                "assert factorial(0) == 1\nassert factorial(5) == 120\n"
                "assert factorial(10) == 3628800",
            ),
            max_tokens=160,
        ),
        _item(
            "coding",
            4,
            "Write a Python function reverse_words(s) that returns the words of s in reverse "
            f"order, joined by single spaces. {_CODE}",
            CodeTests(
                "reverse_words",
                "assert reverse_words('a b c') == 'c b a'\n"
                "assert reverse_words('hello world') == 'world hello'",
            ),
            max_tokens=160,
        ),
    ),
}


def select(suites: Iterable[str]) -> list[CapabilityItem]:
    """The items of the named suites (``all`` for every one); ValueError for an unknown name."""
    names = list(dict.fromkeys(suites))
    if "all" in names:
        names = list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite {unknown[0]!r}: choose from {', '.join(SUITES)}, all")
    return [item for name in names for item in SUITES[name]]


def consistency(extracted: Sequence[str]) -> float | None:
    """Share of answers equal to the most common one; ``None`` for fewer than two."""
    if len(extracted) < 2:
        return None
    most = Counter(extracted).most_common(1)[0][1]
    return most / len(extracted)


async def run_capabilities(
    client: ChatClient,
    model: str,
    items: Sequence[CapabilityItem],
    *,
    repeat: int = 1,
    temperature: float | None = None,
    name: str = "capabilities",
    progress: Callable[[ItemResult], None] | None = None,
) -> EvalRun:
    """Ask every item ``repeat`` times and check the replies; the run's summary is computed.

    ``progress`` hears of each item as it is done."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    results = []
    for item in items:
        results.append(await _run_item(client, model, item, repeat, temperature))
        if progress is not None:
            progress(results[-1])
    run = EvalRun(
        kind="capabilities",
        name=name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        settings={
            "model": model,
            "repeat": repeat,
            "temperature": temperature,
            "suites": ",".join(dict.fromkeys(item.suite for item in items)),
            "sandbox_network": network_isolation(),
        },
        metrics=list(CAPABILITY_METRICS),
        items=results,
    )
    return run.summarise()


async def _run_item(
    client: ChatClient,
    model: str,
    item: CapabilityItem,
    repeat: int,
    temperature: float | None,
) -> ItemResult:
    result = ItemResult(
        id=item.id, group=item.suite, input=item.prompt, expected=item.check.expected
    )
    verdicts: list[Verdict] = []
    errors: list[str] = []
    for attempt in range(1, repeat + 1):
        request = ChatCompletionRequest(
            model=model,
            messages=[
                ChatMessage(role="system", content=SYSTEM),
                ChatMessage(role="user", content=item.prompt),
            ],
            max_tokens=item.max_tokens,
            temperature=temperature,
        )
        started = time.perf_counter()
        try:
            completion = await client.chat(request)
        except FATAL_ERRORS:
            raise
        except GatehouseError as exc:
            errors.append(exc.message)
            result.notes.append(f"run {attempt}: call failed: {exc.message}")
            continue
        result.latency_ms.append((time.perf_counter() - started) * 1000)
        reply = (completion.choices[0].message.content or "") if completion.choices else ""
        verdict = await item.check(reply)
        verdicts.append(verdict)
        if result.output is None:
            result.output = reply
        outcome = "pass" if verdict.passed else "fail"
        detail = f" ({verdict.detail})" if verdict.detail not in ("", verdict.extracted) else ""
        result.notes.append(f"run {attempt}: {outcome}, answer {verdict.extracted[:60]!r}{detail}")
    if verdicts:
        result.scores["pass_rate"] = Score.of(sum(v.passed for v in verdicts) / len(verdicts))
    else:
        reason = f"every call failed: {errors[-1]}" if errors else "no call made"
        result.scores["pass_rate"] = Score.of(None, reason, failed=True)
    agreement = consistency([v.extracted for v in verdicts])
    result.scores["consistency"] = Score.of(
        agreement, "needs two completed runs (--repeat 2 or more)"
    )
    return result
