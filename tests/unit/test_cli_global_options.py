"""``--config`` and ``--data-dir`` work before or after any subcommand (issue 11, item 7)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from gatehouse.cli.main import _subcommands, build_parser, main

# One valid command line for every subcommand; the test below checks none is missing.
COMMANDS = [
    ["serve"],
    ["serve", "--role", "rag"],
    ["db", "upgrade"],
    ["chat", "hi"],
    ["capacity", "--rate", "1", "--latency", "1"],
    ["guard", "text"],
    ["ingest", "docs", "-c", "c"],
    ["search", "query", "-c", "c"],
    ["ask", "question", "-c", "c"],
    ["collections", "list"],
    ["collections", "create", "c"],
    ["collections", "show", "c"],
    ["collections", "delete", "c"],
    ["models"],
    ["models", "list"],
    ["models", "catalog"],
    ["models", "recommend", "--task", "chat"],
    ["models", "cost", "--requests-per-day", "1", "--input-tokens", "1", "--output-tokens", "1"],
    ["keys", "create", "--name", "n"],
    ["keys", "list"],
    ["keys", "revoke", "id"],
    ["keys", "rotate", "id"],
    ["spend"],
    ["purge"],
    ["privacy", "export", "--user", "u"],
    ["privacy", "delete", "--user", "u"],
    ["eval", "retrieval", "--qrels", "q", "--run", "r"],
    ["eval", "rag", "-c", "c", "--queries", "q", "--qrels", "r"],
    ["eval", "answers", "-c", "c", "--dataset", "d"],
    ["eval", "capabilities", "--model", "m"],
    ["eval", "compare", "a.json", "b.json"],
    ["version"],
]


def _names(parser: argparse.ArgumentParser) -> set[str]:
    return {command.prog.removeprefix("gatehouse ") for command in _subcommands(parser)}


def test_every_subcommand_is_covered() -> None:
    covered = set()
    for argv in COMMANDS:
        words = [a for a in argv if not a.startswith("-")]
        covered |= {words[0], " ".join(words[:2])}
    assert _names(build_parser()) <= covered


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_on_either_side(argv: list[str], where: str) -> None:
    options = ["--config", "my.yaml", "--data-dir", "state"]
    line = [*options, *argv] if where == "before" else [*argv, *options]
    args = build_parser().parse_args(line)
    assert args.config == Path("my.yaml")
    assert args.data_dir == Path("state")


def test_a_value_before_the_subcommand_is_not_reset_by_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEHOUSE_CONFIG", "from-env.yaml")
    args = build_parser().parse_args(["--data-dir", "state", "keys", "list"])
    assert (args.config, args.data_dir) == (Path("from-env.yaml"), Path("state"))
    args = build_parser().parse_args(["keys", "list", "--config", "given.yaml"])
    assert args.config == Path("given.yaml")
    assert args.data_dir is None


def test_serve_reads_a_config_given_after_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  port: many\n")
    assert main(["serve", "--config", str(config), "--data-dir", str(tmp_path)]) == 2
    assert "server.port" in capsys.readouterr().err
    config.write_text("server:\n  port: many\n  prot: 1\n")
    assert main(["models", "--config", str(config)]) == 2
    assert capsys.readouterr().err == (
        "gatehouse: error: invalid configuration: server.port: Input should be a valid "
        f"integer, unable to parse string as an integer (from {config}); "
        f"server.prot: unknown key (from {config})\n"
    )


def test_the_data_dir_after_the_subcommand_is_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "create", "--name", "late", "--data-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["--data-dir", str(tmp_path), "keys", "list"]) == 0
    assert "late" in capsys.readouterr().out


def test_a_data_dir_that_is_a_file_and_a_config_that_is_not_text_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    assert main(["--data-dir", str(in_the_way), "keys", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("gatehouse: error: cannot use ")
    assert str(in_the_way) in err
    assert "Traceback" not in err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"server:\n  port: \xff\xfe\n")
    assert main(["--config", str(binary), "models"]) == 2
    err = capsys.readouterr().err
    assert "is not UTF-8 text" in err
    assert str(binary) in err


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "q", "-c", "c", "--top-k", "0"],
        ["ask", "q", "-c", "c", "--top-k", "-3"],
        ["ingest", "docs", "-c", "c", "--chunk-size", "0"],
        ["collections", "create", "c", "--chunk-overlap", "-1"],
        ["serve", "--workers", "0"],
        ["chat", "hi", "--max-tokens", "0"],
    ],
)
def test_counts_that_must_be_positive_are_refused_by_name(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert f"argument {argv[-2]}" in capsys.readouterr().err
