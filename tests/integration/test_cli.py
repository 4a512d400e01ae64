"""The command line against the in-process model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def run(*args: str, stdin: str | None = None, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", "--data-dir", str(data_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chat_streams_an_answer(tmp_path: Path) -> None:
    result = run("chat", "Say hello.", "--max-tokens", "12", "--seed", "3", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_chat_reads_the_prompt_from_stdin(tmp_path: Path) -> None:
    result = run(
        "chat",
        "--system",
        "Answer briefly.",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        stdin="What is two plus two?",
        data_dir=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def test_chat_failures_exit_1_with_one_line(tmp_path: Path) -> None:
    result = run("chat", "hi", "--model", "absent", data_dir=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == "gatehouse: error: The model 'absent' does not exist."


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    bad_flag = run("chat", "hi", "--temperature", "hot", data_dir=tmp_path)
    assert bad_flag.returncode == 2
    assert len(bad_flag.stderr.strip().splitlines()) == 1
    bad_range = run("chat", "hi", "--temperature", "7", data_dir=tmp_path)
    assert bad_range.returncode == 2
    assert "temperature" in bad_range.stderr
    empty = run("chat", stdin="", data_dir=tmp_path)
    assert empty.returncode == 2


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  port: many\n")
    result = run("--config", str(config), "serve", data_dir=tmp_path)
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_models_and_version(tmp_path: Path) -> None:
    models = run("models", data_dir=tmp_path)
    assert models.returncode == 0
    assert "local/smollm2" in models.stdout
    assert "local/minilm" in models.stdout
    version = run("version", data_dir=tmp_path)
    assert version.returncode == 0
    assert version.stdout.startswith("gatehouse ")


def test_eval_retrieval_prints_json_and_fails_in_one_line(tmp_path: Path) -> None:
    qrels = tmp_path / "test.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    good = tmp_path / "good.run"
    good.write_text("q1 Q0 d1 1 2.5 bm25\nq1 Q0 d3 2 1.5 bm25\n")
    result = run(
        "eval", "retrieval", "--qrels", str(qrels), "--run", str(good), "--json", data_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["recall@10"] == 0.5
    assert scores["mrr@10"] == 0.5
    bad = tmp_path / "bad.run"
    bad.write_text("q1 Q0 d1 1 2.5 bm25\nq1 Q0 d3 2 bm25\n")
    result = run(
        "eval", "retrieval", "--qrels", str(qrels), "--run", str(bad), "--json", data_dir=tmp_path
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"gatehouse: error: {bad}:2: expected 6 fields 'qid Q0 docid rank score tag', found 5\n"
    )
