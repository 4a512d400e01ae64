"""Capability tests: the checks, the sandbox that runs model code, repeats and consistency."""

from __future__ import annotations

import pytest

from gatehouse.core.errors import AuthenticationError, UpstreamError
from gatehouse.evals.capabilities import (
    SUITES,
    CapabilityItem,
    consistency,
    run_capabilities,
    select,
)
from gatehouse.evals.checks import (
    CodeTests,
    Contains,
    JsonFields,
    NumberAnswer,
    Rule,
    WordAnswer,
    extract_code,
    last_number,
)
from gatehouse.evals.sandbox import Limits, network_isolation, run_python

from .eval_fakes import ScriptedChat


def test_last_number_reads_digits_commas_and_words() -> None:
    assert last_number("17 * 23 = 391") == 391
    assert last_number("The answer is 1,000.") == 1000
    assert last_number("about -2.5 degrees") == -2.5
    assert last_number("It is twelve") == 12
    assert last_number("no idea") is None


async def test_number_and_word_answers() -> None:
    assert (await NumberAnswer(391)("17 * 23 is 391.")).passed
    wrong = await NumberAnswer(391)("I think 390")
    assert (wrong.passed, wrong.extracted) == (False, "390")
    bob = WordAnswer(("Bob",), ("Tom", "Ann"))
    assert (await bob("Bob is the shortest.")).passed
    hedged = await bob("Either Ann or Bob.")
    assert not hedged.passed
    assert "Ann" in hedged.detail
    assert not (await bob("Tom")).passed


async def test_contains_json_fields_and_rules() -> None:
    assert (await Contains("billing@example.org")("Write to Billing@Example.org")).passed
    fields = JsonFields({"name": "Maria", "age": 34})
    assert (await fields('Sure: {"name": "maria", "age": "34", "city": "x"}')).passed
    missing = await fields('{"name": "Maria"}')
    assert not missing.passed
    assert "age" in missing.detail
    assert not (await fields("Maria, 34")).passed
    ok = Rule("exactly OK", lambda text: text == "OK")
    assert (await ok("  OK\n")).passed
    assert not (await ok("OK!")).passed


def test_code_is_taken_from_fences_or_the_whole_reply() -> None:
    assert extract_code("Here:\n```python\ndef f():\n    return 1\n```\nDone.") == (
        "def f():\n    return 1"
    )
    assert extract_code("def f(): return 1") == "def f(): return 1"


async def test_code_tests_pass_fail_and_name_the_failure() -> None:
    check = CodeTests("add", "assert add(2, 3) == 5")
    assert (await check("```python\ndef add(a, b):\n    return a + b\n```")).passed
    wrong = await check("def add(a, b):\n    return a - b")
    assert not wrong.passed
    assert "AssertionError" in wrong.detail
    assert (await check("print('no function')")).detail == "no function named add"
    # a longer name that starts with the wanted one is another function
    misnamed = await check("def addition(a, b):\n    return a + b")
    assert misnamed.detail == "no function named add"


async def test_the_sandbox_stops_endless_loops_at_the_timeout() -> None:
    looping = CodeTests("spin", "spin()", Limits(timeout=1.0, cpu_seconds=5))
    verdict = await looping("def spin():\n    while True:\n        pass")
    assert not verdict.passed
    assert verdict.detail == "timed out after 1s"


async def test_the_sandbox_refuses_network_processes_memory_and_big_files() -> None:
    limits = Limits(timeout=10.0, cpu_seconds=5, memory_mb=256)
    network = await run_python(
        "import socket\nsocket.create_connection(('127.0.0.1', 80), timeout=1)", limits
    )
    assert not network.ok
    assert "network access is disabled" in network.output
    process = await run_python("import subprocess\nsubprocess.run(['true'])", limits)
    assert not process.ok
    assert "new processes are disabled" in process.output
    memory = await run_python("x = bytearray(1024 * 1024 * 1024)", limits)
    assert not memory.ok
    assert "MemoryError" in memory.output
    big = await run_python("open('f', 'wb').write(b'x' * (4 << 20))", limits)
    assert not big.ok
    assert "File too large" in big.output


async def test_the_sandbox_runs_in_a_fresh_temporary_home_with_few_variables() -> None:
    result = await run_python(
        "import os, sys\nprint(os.getcwd() == os.environ['HOME'])\n"
        "print(sorted(k for k in os.environ if k.startswith('GATEHOUSE')))\n"
        "print('site' in sys.modules)"
    )
    assert result.ok, result.output
    assert result.output.split() == ["True", "[]", "False"]
    assert result.network == network_isolation()


def test_consistency_is_the_share_of_the_most_common_answer() -> None:
    assert consistency(["4", "4", "5", "4"]) == 0.75
    assert consistency(["x", "x"]) == 1.0
    assert consistency(["x"]) is None
    assert consistency([]) is None


def test_suites_are_selected_by_name() -> None:
    assert len(select(["all"])) == sum(len(items) for items in SUITES.values())
    assert {i.suite for i in select(["math", "coding", "math"])} == {"math", "coding"}
    with pytest.raises(ValueError, match="unknown suite 'poetry'"):
        select(["poetry"])


async def test_every_built_in_item_passes_with_a_right_answer() -> None:
    right = {
        "reasoning-1": "Bob",
        "reasoning-2": "Yes",
        "reasoning-3": "Sunday",
        "reasoning-4": "9",
        "math-1": "391",
        "math-2": "12",
        "math-3": "30",
        "math-4": "55",
        "extraction-1": "billing@example.org",
        "extraction-2": "4521",
        "extraction-3": '{"name": "Maria", "age": 34}',
        "extraction-4": "Lisbon",
        "instruction-1": "OK",
        "instruction-2": "red, green, blue",
        "instruction-3": "The sea is very calm.",
        "instruction-4": "PARIS",
        "coding-1": "def add(a, b):\n    return a + b",
        "coding-2": "def is_palindrome(s):\n    return s.lower() == s.lower()[::-1]",
        "coding-3": "def factorial(n):\n    return 1 if n == 0 else n * factorial(n - 1)",
        "coding-4": "def reverse_words(s):\n    return ' '.join(s.split()[::-1])",
    }
    items = select(["all"])
    assert {item.id for item in items} == set(right)
    for item in items:
        verdict = await item.check(right[item.id])
        assert verdict.passed, (item.id, verdict)


ITEM = CapabilityItem("m-1", "math", "What is 2 + 2?", NumberAnswer(4))


async def test_repeats_measure_pass_rate_consistency_and_latency() -> None:
    chat = ScriptedChat(["4", "The answer is 4.", "5", "four"])
    run = await run_capabilities(chat, "local/smollm2", [ITEM], repeat=4, temperature=0.7)
    item = run.items[0]
    assert item.scores["pass_rate"].value == 0.75
    assert item.scores["consistency"].value == 0.75
    assert len(item.latency_ms) == 4
    assert item.output == "4"
    assert item.group == "math"
    assert run.settings["repeat"] == 4
    assert run.groups["math"]["pass_rate"].mean == 0.75
    assert run.latency is not None
    assert run.latency.count == 4
    assert all(c.temperature == 0.7 and c.model == "local/smollm2" for c in chat.calls)


async def test_one_run_has_no_consistency_and_failed_calls_are_not_wrong_answers() -> None:
    single = await run_capabilities(ScriptedChat(["4"]), "m", [ITEM])
    consistency_score = single.items[0].scores["consistency"]
    assert consistency_score.value is None
    assert not consistency_score.failed
    assert single.summary["consistency"].skipped == 1
    flaky = await run_capabilities(
        ScriptedChat([UpstreamError("boom"), "4"]), "m", [ITEM], repeat=2
    )
    assert flaky.items[0].scores["pass_rate"].value == 1.0
    assert any("call failed: boom" in note for note in flaky.items[0].notes)
    down = await run_capabilities(ScriptedChat([UpstreamError("boom")]), "m", [ITEM])
    assert down.items[0].scores["pass_rate"].failed
    assert down.summary["pass_rate"].failed == 1
    assert down.summary["pass_rate"].mean is None


async def test_a_refused_caller_stops_the_run() -> None:
    with pytest.raises(AuthenticationError):
        await run_capabilities(ScriptedChat([AuthenticationError("bad key")]), "m", [ITEM])
