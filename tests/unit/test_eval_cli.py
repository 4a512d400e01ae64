"""``gatehouse eval retrieval`` and ``gatehouse eval rag``: output, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gatehouse.cli import eval as eval_cli
from gatehouse.cli.main import build_parser, main
from gatehouse.evals import evaluate, rank, read_qrels, read_run
from gatehouse.gateway import Gateway, ModelRegistry
from gatehouse.rag import CollectionSpec, DocumentIn, RagEngine

from .fakes import EchoChat
from .rag_fakes import BagOfWords

CONTRACT = ["ndcg@10", "ndcg@100", "recall@10", "recall@100", "precision@10", "mrr@10", "map@100"]


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\nq1 0 d2 2\nq2 0 d3 1\n")
    run = tmp_path / "run.txt"
    run.write_text("q1 Q0 d2 1 3.0 t\nq1 Q0 d9 2 2.0 t\nq1 Q0 d1 3 1.0 t\n")
    return qrels, run


def test_json_prints_one_object_of_the_contract_metrics(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, run = files
    assert main(["eval", "retrieval", "--qrels", str(qrels), "--run", str(run), "--json"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1
    scores = json.loads(out)
    assert list(scores) == CONTRACT
    # q1: d2 (rel 2) first, d1 (rel 1) third, ideal d2, d1; q2 is not in the run.
    q1_ndcg = (2 + 1 / 2) / (2 + 1 / 1.584962500721156)
    assert scores["ndcg@10"] == pytest.approx(q1_ndcg / 2)
    assert scores["recall@10"] == pytest.approx(0.5)
    assert scores["precision@10"] == pytest.approx(0.1)
    assert scores["mrr@10"] == pytest.approx(0.5)
    assert scores["map@100"] == pytest.approx((1 + 2 / 3) / 2 / 2)


def test_the_table_names_each_metric_and_the_queries_not_run(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, run = files
    assert main(["eval", "retrieval", "--qrels", str(qrels), "--run", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["metric", "value"]
    assert lines[1].split() == ["ndcg@10", "0.4751"]
    assert lines[-1] == "2 judged queries, 1 absent from the run (scored 0)"


def test_chosen_metrics(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    qrels, run = files
    argv = ["eval", "retrieval", "--qrels", str(qrels), "--run", str(run), "--json"]
    assert main([*argv, "--metrics", "recall@1,ndcg@3"]) == 0
    assert list(json.loads(capsys.readouterr().out)) == ["recall@1", "ndcg@3"]
    with pytest.raises(SystemExit) as usage:  # argparse exits: a usage error
        main([*argv, "--metrics", "f1@3"])
    assert usage.value.code == 2
    err = capsys.readouterr().err
    assert "unknown metric 'f1@3'" in err
    assert len(err.strip().splitlines()) == 1


def test_a_malformed_line_is_one_line_naming_file_and_line_with_exit_1(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, run = files
    bad_run = tmp_path / "bad.run"
    bad_run.write_text("q1 Q0 d1 1 0.5 t\nq1 Q0 d2 2 0.4\n")
    assert main(["eval", "retrieval", "--qrels", str(qrels), "--run", str(bad_run)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"gatehouse: error: {bad_run}:2: expected 6 fields 'qid Q0 docid rank score tag', found 5\n"
    )
    bad_qrels = tmp_path / "bad.qrels"
    bad_qrels.write_text("q1 0 d1 1\nq1 0 d2 relevant\n")
    assert main(["eval", "retrieval", "--qrels", str(bad_qrels), "--run", str(run)]) == 1
    assert capsys.readouterr().err == (
        f"gatehouse: error: {bad_qrels}:2: the relevance 'relevant' is not an integer\n"
    )


def test_a_missing_file_is_named(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qrels, _ = files
    absent = tmp_path / "absent.run"
    assert main(["eval", "retrieval", "--qrels", str(qrels), "--run", str(absent)]) == 1
    assert capsys.readouterr().err == f"gatehouse: error: {absent}: no such file\n"


# ---- eval rag: a tiny collection over the fake bag-of-words embedder ----

DOCS = [
    DocumentIn(id="cats", text="Cats purr and sleep all day in the sun."),
    DocumentIn(id="dogs", text="Dogs bark at the mailman and fetch sticks."),
    DocumentIn(id="tax", text="Income tax returns are due in April."),
    DocumentIn(id="fish", text="Goldfish swim in a bowl and need clean water."),
]


@pytest.fixture
async def engine(tmp_path: Path) -> RagEngine:
    gateway = Gateway(
        ModelRegistry([BagOfWords(), EchoChat()], {"default": "test/echo"}), started_at=0
    )
    rag = RagEngine(tmp_path / "rag", gateway, max_document_chars=5000)
    rag.create_collection(CollectionSpec(name="kb", embedding_model="test/bow"))
    await rag.add_documents("kb", DOCS)
    return rag


@pytest.fixture
def labelled(tmp_path: Path) -> tuple[Path, Path]:
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        '{"_id": "q1", "text": "why do cats purr", "metadata": {}}\n'
        '{"_id": "q2", "text": "when is income tax due"}\n'
        '{"_id": "q4", "text": "a query nobody judged"}\n'
    )
    qrels = tmp_path / "test.tsv"
    # q3 is judged but has no query text: it cannot be run and scores 0.
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tcats\t1\nq2\ttax\t2\nq3\tfish\t1\n")
    return queries, qrels


@pytest.mark.parametrize("mode", ["hybrid", "dense", "keyword"])
async def test_eval_rag_searches_each_judged_query(
    engine: RagEngine,
    labelled: tuple[Path, Path],
    tmp_path: Path,
    mode: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    queries, qrels = labelled
    saved = tmp_path / "run.txt"
    argv = ["eval", "rag", "-c", "kb", "--queries", str(queries), "--qrels", str(qrels)]
    options = ["--mode", mode, "--top-k", "3", "--save-run", str(saved), "--json"]
    args = build_parser().parse_args([*argv, *options])
    assert await eval_cli.evaluate_collection(engine, args) == 0
    captured = capsys.readouterr()
    scores = json.loads(captured.out)
    assert list(scores) == CONTRACT
    assert "1 of 3 judged queries are not in" in captured.err
    # Both runnable queries find their document first; q3 scores 0.
    assert scores["mrr@10"] == pytest.approx(2 / 3)
    assert scores["recall@10"] == pytest.approx(2 / 3)
    assert scores["ndcg@10"] == pytest.approx(2 / 3)
    ranking = rank(read_run(saved))
    assert set(ranking) == {"q1", "q2"}  # the unjudged q4 is not searched
    assert ranking["q1"][0] == "cats"
    assert len(ranking["q1"]) <= 3
    assert saved.read_text().split("\n")[0].split()[-1] == f"gatehouse-{mode}"
    # The saved run scores exactly as the command did.
    assert evaluate(read_qrels(qrels), ranking) == scores


async def test_eval_rag_on_a_missing_collection_fails_before_searching(
    engine: RagEngine, labelled: tuple[Path, Path]
) -> None:
    from gatehouse.core.errors import NotFoundError

    queries, qrels = labelled
    args = build_parser().parse_args(
        ["eval", "rag", "-c", "absent", "--queries", str(queries), "--qrels", str(qrels)]
    )
    with pytest.raises(NotFoundError):
        await eval_cli.evaluate_collection(engine, args)


async def test_eval_rag_makes_the_run_file_s_folder_and_fails_on_a_bad_one_before_searching(
    engine: RagEngine, labelled: tuple[Path, Path], tmp_path: Path
) -> None:
    queries, qrels = labelled
    argv = ["eval", "rag", "-c", "kb", "--queries", str(queries), "--qrels", str(qrels)]
    nested = tmp_path / "runs" / "today" / "run.txt"
    args = build_parser().parse_args([*argv, "--save-run", str(nested), "--json"])
    assert await eval_cli.evaluate_collection(engine, args) == 0
    assert nested.read_text().startswith("q1 Q0 ")
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    args = build_parser().parse_args([*argv, "--save-run", str(in_the_way / "run.txt")])
    searched = 0

    async def count(*_: object, **__: object) -> list[object]:
        nonlocal searched
        searched += 1
        return []

    engine.search = count  # type: ignore[method-assign]
    with pytest.raises(OSError, match="a-file"):
        await eval_cli.evaluate_collection(engine, args)
    assert searched == 0


def test_eval_rag_errors_through_the_command(
    labelled: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queries, qrels = labelled
    argv = ["--data-dir", str(tmp_path / "state"), "eval", "rag", "-c", "kb"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"_id": "q1", "text": "cats"}\n{"_id": "q2"}\n')
    assert main([*argv, "--queries", str(bad), "--qrels", str(qrels)]) == 1
    assert capsys.readouterr().err == (
        f"gatehouse: error: {bad}:2: each line needs a non-empty string 'text'\n"
    )
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--queries", str(queries), "--qrels", str(qrels), "--top-k", "0"])
    assert usage.value.code == 2
    assert "--top-k" in capsys.readouterr().err
