"""``gatehouse eval answers | capabilities | compare``: usage and input errors, compare output."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gatehouse.cli.main import main
from gatehouse.core.errors import (
    AuthenticationError,
    BudgetExceededError,
    NotFoundError,
    RateLimitError,
    UpstreamError,
)
from gatehouse.evals.remote import error_from_reply
from gatehouse.evals.results import EvalRun, ItemResult, Score, write_run


def saved_run(path: Path, values: dict[str, float]) -> Path:
    run = EvalRun(
        kind="capabilities",
        name=path.stem,
        created_at="2026-12-01T10:00:00+00:00",
        metrics=["pass_rate"],
        items=[
            ItemResult(id=k, input="q", scores={"pass_rate": Score.of(v)})
            for k, v in values.items()
        ],
    ).summarise()
    write_run(run, path)
    return path


def exit_code(argv: list[str]) -> int | str | None:
    """``main``'s exit code, whether it returns it or argparse exits with it."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_compare_prints_both_runs_and_the_differences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(tmp_path / "a.json", {"math-1": 1.0, "math-2": 0.0})
    b = saved_run(tmp_path / "b.json", {"math-1": 1.0, "math-2": 0.5})
    assert main(["eval", "compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "pass_rate" in out
    assert "math-2" in out
    assert "+0.500" in out
    assert main(["eval", "compare", str(a), str(b), "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["differences"] == [
        {"id": "math-2", "metric": "pass_rate", "a": 0.0, "b": 0.5, "delta": 0.5}
    ]
    assert body["metrics"][0]["delta"] == pytest.approx(0.25)


def test_compare_of_a_file_that_is_not_a_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = saved_run(tmp_path / "a.json", {"x": 1.0})
    other = tmp_path / "scores.json"
    other.write_text('{"ndcg@10": 0.3}')
    assert main(["eval", "compare", str(a), str(other)]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert f"{other}: not a gatehouse eval run" in err


def test_a_malformed_dataset_line_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        '{"id": "q1", "question": "Why?", "reference": "Because."}\n\n{"id": "q2"}\n'
    )
    code = main(
        ["--data-dir", str(tmp_path / "d"), "eval", "answers", "-c", "x", "--dataset", str(dataset)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        err.strip()
        == f"gatehouse: error: {dataset}:3: each line needs a non-empty string 'question'"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["answers", "-c", "x", "--dataset", "d.jsonl", "--metrics", "faithfulness"], "--judge"),
        (
            ["answers", "-c", "x", "--dataset", "d.jsonl", "--metrics", "bleu"],
            "unknown answer metric",
        ),
        (["capabilities", "--model", "m", "--suite", "poetry"], "unknown suite 'poetry'"),
        (["capabilities", "--model", "m", "--repeat", "0"], "positive integer"),
        (["answers", "-c", "x", "--dataset", "d", "--judge-retries", "-1"], "0 or a positive"),
    ],
)
def test_usage_errors_exit_2_in_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert exit_code(["eval", *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_reference_questions_may_be_lists_and_ids_unique(tmp_path: Path) -> None:
    from gatehouse.core.errors import ValidationFailedError
    from gatehouse.evals.formats import read_answer_set

    path = tmp_path / "qa.jsonl"
    path.write_text(
        '{"id": 1, "question": "A?", "reference": ["x", "y"]}\n{"id": "2", "question": "B?"}\n'
    )
    questions = read_answer_set(path)
    assert [(q.id, q.references) for q in questions] == [("1", ["x", "y"]), ("2", [])]
    path.write_text('{"id": "1", "question": "A?"}\n{"id": "1", "question": "B?"}\n')
    with pytest.raises(ValidationFailedError, match=":2: question 1 appears twice"):
        read_answer_set(path)
    path.write_text('{"id": "1", "question": "A?", "reference": 3}\n')
    with pytest.raises(ValidationFailedError, match="'reference' must be"):
        read_answer_set(path)


def test_remote_errors_are_classified_by_status_and_code() -> None:
    def body(code: str | None) -> bytes:
        return json.dumps({"error": {"message": "m", "type": "t", "code": code}}).encode()

    budget = error_from_reply(429, body("budget_exceeded"), httpx.Headers())
    assert isinstance(budget, BudgetExceededError)
    limited = error_from_reply(
        429, body("rate_limit_exceeded"), httpx.Headers({"retry-after": "2"})
    )
    assert isinstance(limited, RateLimitError)
    assert limited.retry_after == 2.0
    assert isinstance(error_from_reply(401, body(None), httpx.Headers()), AuthenticationError)
    assert isinstance(
        error_from_reply(404, body("model_not_found"), httpx.Headers()), NotFoundError
    )
    broken = error_from_reply(502, b"<html>bad gateway</html>", httpx.Headers())
    assert isinstance(broken, UpstreamError)
    assert broken.message == "HTTP 502"


def test_a_run_that_scored_nothing_exits_1_with_the_first_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A --url nothing listens on: every call fails. The report is still written
    # (it says why for each item), but the command must not pass for a run.
    out = tmp_path / "unreachable"
    argv = ["eval", "capabilities", "--model", "m", "--suite", "math", "--out", str(out)]
    assert exit_code([*argv, "--url", "http://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "gatehouse: error: no item could be scored: " in err
    assert "http://127.0.0.1:1" in err
    assert out.with_suffix(".json").is_file()
