"""Qrels, run and queries files: both qrels formats, and errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gatehouse.core.errors import ValidationFailedError
from gatehouse.evals import rank, read_qrels, read_queries, read_run, write_run


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_trec_and_beir_qrels_read_the_same(tmp_path: Path) -> None:
    trec = write(tmp_path, "qrels.txt", "q1 0 d1 1\nq1 0 d2 0\n\nq2 Q0 d3 2\r\n")
    beir = write(
        tmp_path, "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq2\td3\t2\n"
    )
    headerless = write(tmp_path, "bare.tsv", "q1\td1\t1\nq1\td2\t0\nq2\td3\t2\n")
    expected = {"q1": {"d1": 1, "d2": 0}, "q2": {"d3": 2}}
    assert read_qrels(trec) == expected
    assert read_qrels(beir) == expected
    assert read_qrels(headerless) == expected


def test_a_repeated_judgment_must_agree(tmp_path: Path) -> None:
    same = write(tmp_path, "same.txt", "q1 0 d1 1\nq1 0 d1 1\n")
    assert read_qrels(same) == {"q1": {"d1": 1}}
    other = write(tmp_path, "other.txt", "q1 0 d1 1\nq1 0 d1 2\n")
    with pytest.raises(ValidationFailedError, match=r"other.txt:2: document d1 of query q1"):
        read_qrels(other)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 0 d1 1\nq1 0 d2\n", "qrels:2: expected 4 fields 'qid 0 docid rel', found 3"),
        ("q1 0 d1 high\n", "qrels:1: the relevance 'high' is not an integer"),
        ("q1 d1 1\n", "qrels:1: expected 4 fields .*found 3 \\(BEIR TSV separates .* by tabs"),
        ("q1\td1\tyes\n", "qrels:1: the relevance 'yes' is not an integer"),
        ("q1\td1\t1\nq1 0 d2 1\n", "qrels:2: expected 3 tab-separated fields, found 1"),
        ("query-id\tcorpus-id\tscore\nq1\td1\n", "qrels:2: expected 3 tab-separated fields"),
        ("query-id\tcorpus-id\tscore\nq1\td1\t0.5\n", "qrels:2: the relevance '0.5'"),
        ("\n\n", "qrels: no judgments"),
        ("query-id\tcorpus-id\tscore\n", "qrels: no judgments"),
    ],
)
def test_malformed_qrels_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, "qrels", text)
    with pytest.raises(ValidationFailedError, match=message) as caught:
        read_qrels(path)
    assert "\n" not in caught.value.message


def test_runs_read_and_rank_by_score(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "run.txt",
        "q1 Q0 d1 1 0.5 bm25\nq1 Q0 d2 2 0.9 bm25\nq1 Q0 d3 3 -1e3 bm25\nq2 Q0 d4 1 7 bm25\n",
    )
    assert read_run(path) == {"q1": {"d1": 0.5, "d2": 0.9, "d3": -1000.0}, "q2": {"d4": 7.0}}
    assert rank(read_run(path)) == {"q1": ["d2", "d1", "d3"], "q2": ["d4"]}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("q1 Q0 d1 1 0.5\n", "run:1: expected 6 fields 'qid Q0 docid rank score tag', found 5"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 high t\n", "run:2: the score 'high' is not a finite"),
        ("q1 Q0 d1 1 nan t\n", "run:1: the score 'nan'"),
        ("q1 Q0 d1 1 0.5 t\nq1 Q0 d1 2 0.4 t\n", "run:2: document d1 listed twice for query q1"),
    ],
)
def test_malformed_runs_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValidationFailedError, match=message):
        read_run(write(tmp_path, "run", text))


def test_an_empty_run_retrieved_nothing(tmp_path: Path) -> None:
    assert read_run(write(tmp_path, "run", "")) == {}


def test_missing_and_binary_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailedError, match=r"absent\.txt: no such file"):
        read_run(tmp_path / "absent.txt")
    binary = tmp_path / "run.bin"
    binary.write_bytes(b"q1 Q0 d1 1 0.5 t\n\xff\xfe\n")
    with pytest.raises(ValidationFailedError, match=r"run.bin:2: not UTF-8 text"):
        read_run(binary)


def test_a_written_run_reads_back_in_the_same_order(tmp_path: Path) -> None:
    ranking = {"q1": ["b", "a", "c"], "q2": ["z"]}  # "a" after "b": not id order
    path = tmp_path / "run.txt"
    write_run(path, ranking, tag="gatehouse-hybrid")
    assert path.read_text().splitlines()[0] == "q1 Q0 b 1 3 gatehouse-hybrid"
    assert rank(read_run(path)) == ranking


def test_beir_queries(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "queries.jsonl",
        '{"_id": "q1", "text": "what is a cat", "metadata": {}}\n\n{"_id": 2, "text": "dogs"}\n',
    )
    assert read_queries(path) == {"q1": "what is a cat", "2": "dogs"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"_id": "q1", "text": "a"}\nnot json\n', "queries.jsonl:2: not a JSON object"),
        ('["q1", "a"]\n', "queries.jsonl:1: not a JSON object"),
        ('{"text": "a"}\n', "queries.jsonl:1: each line needs an '_id'"),
        ('{"_id": "q1", "text": " "}\n', "queries.jsonl:1: each line needs a non-empty"),
        ('{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n', "queries.jsonl:2: query q1"),
    ],
)
def test_malformed_queries_name_the_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValidationFailedError, match=message):
        read_queries(write(tmp_path, "queries.jsonl", text))
