"""Evaluation end to end on the real local models: ``eval answers`` with SmolLM2 as the
answering model and the judge, ``eval capabilities`` with its sandboxed coding suite,
``eval compare`` on the two answer runs, and the HTML report rendered in headless Chromium.

The labelled set is ``tests/fixtures/evals/`` (written for these tests). The
135M model is a poor judge: what is checked is what must hold whatever it
says: every score a number in 0..1 or ``null`` with a reason, the counts
adding up, no NaN anywhere, the deterministic scores equal to recomputing
them from the saved answers, and a report that renders.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from gatehouse.evals.answers import exact_match, strip_citations, token_f1
from gatehouse.evals.formats import read_answer_set
from gatehouse.evals.results import EvalRun, read_run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "evals"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
# A small context keeps the 135M chat model quick on 2 cores.
ENV = {"GATEHOUSE_RAG__CONTEXT_TOKENS": "300"}


def cli(data_dir: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=1800,
        env={**os.environ, **ENV},
        cwd=cwd,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("evals") / "data"
    ingest = cli(data, "ingest", str(FIXTURES / "corpus.jsonl"), "--collection", "notices")
    assert ingest.returncode == 0, ingest.stderr
    return data


@pytest.fixture(scope="module")
def answers_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("answers") / "smollm2"
    done = cli(
        data_dir,
        "eval",
        "answers",
        "--collection",
        "notices",
        "--dataset",
        str(FIXTURES / "qa.jsonl"),
        "--judge",
        "local/smollm2",
        "--judge-retries",
        "1",
        "--judge-max-tokens",
        "96",
        "--max-tokens",
        "32",
        "--top-k",
        "2",
        "--concurrency",
        "5",
        "--out",
        str(prefix),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    assert "eval: 5/5 " in done.stderr  # one progress line per question
    printed = json.loads(done.stdout)
    assert printed["json"] == f"{prefix}.json"
    assert printed["html"] == f"{prefix}.html"
    return prefix


def test_answers_run_scores_every_question_or_says_why_not(answers_run: Path) -> None:
    text = answers_run.with_suffix(".json").read_text()
    assert "NaN" not in text
    run = read_run(answers_run.with_suffix(".json"))
    questions = {q.id: q for q in read_answer_set(FIXTURES / "qa.jsonl")}
    assert [item.id for item in run.items] == list(questions)
    assert run.metrics == [
        "exact_match",
        "token_f1",
        "citation_validity",
        "faithfulness",
        "answer_relevancy",
        "context_precision",
        "context_recall",
        "answer_correctness",
    ]
    for item in run.items:
        assert item.output is not None
        assert len(item.latency_ms) == 1
        for metric in run.metrics:
            score = item.scores[metric]
            if score.value is None:
                assert score.reason, (item.id, metric)
            else:
                assert 0.0 <= score.value <= 1.0
                assert score.reason is None
        # the deterministic scores are what the saved answer gives
        references = questions[item.id].references
        if references:
            answer = strip_citations(item.output)
            assert item.scores["exact_match"].value == exact_match(answer, references)
            assert item.scores["token_f1"].value == pytest.approx(token_f1(answer, references))
    no_reference = next(i for i in run.items if i.id == "garden-no-reference")
    for metric in ("exact_match", "token_f1", "context_precision", "answer_correctness"):
        assert no_reference.scores[metric].reason == "no reference answer"
        assert not no_reference.scores[metric].failed
    assert_summary_adds_up(run)
    assert run.usage["judge_calls"] > 0
    assert run.settings["judge"] == "local/smollm2"


def assert_summary_adds_up(run: EvalRun) -> None:
    for metric, summary in run.summary.items():
        assert summary.scored + summary.failed + summary.skipped == len(run.items)
        values = [i.scores[metric].value for i in run.items if i.scores[metric].value is not None]
        if values:
            assert summary.mean == pytest.approx(sum(values) / len(values))
        else:
            assert summary.mean is None
        assert summary.failed == sum(1 for i in run.items if i.scores[metric].failed)
    assert run.latency is not None
    assert run.latency.p50_ms is not None
    assert math.isfinite(run.latency.p50_ms)


def test_capabilities_repeat_every_item_and_run_code_in_the_sandbox(
    data_dir: Path, tmp_path: Path
) -> None:
    prefix = tmp_path / "caps"
    done = cli(
        data_dir,
        "eval",
        "capabilities",
        "--model",
        "local/smollm2",
        "--suite",
        "math,coding",
        "--repeat",
        "2",
        "--temperature",
        "0.8",
        "--out",
        str(prefix),
    )
    assert done.returncode == 0, done.stderr
    assert "pass_rate" in done.stdout
    assert "latency: p50" in done.stdout
    run = read_run(prefix.with_suffix(".json"))
    assert [i.group for i in run.items] == ["math"] * 4 + ["coding"] * 4
    for item in run.items:
        assert len(item.latency_ms) == 2
        runs = [note for note in item.notes if note.startswith("run ")]
        assert len(runs) == 2
        assert item.scores["pass_rate"].value in (0.0, 0.5, 1.0)
        assert item.scores["consistency"].value in (0.5, 1.0)
    assert set(run.groups) == {"math", "coding"}
    assert run.settings["sandbox_network"] in ("namespace", "socket-patch")
    assert_summary_adds_up(run)
    assert prefix.with_suffix(".html").stat().st_size > 2000


def test_compare_of_a_run_with_itself_shows_no_difference(
    answers_run: Path, tmp_path: Path
) -> None:
    path = answers_run.with_suffix(".json")
    done = cli(tmp_path / "unused", "eval", "compare", str(path), str(path), "--json")
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["differences"] == []
    assert body["same_items"] == 5
    assert all(row["delta"] in (0.0, None) for row in body["metrics"])


def test_the_report_renders_in_headless_chromium(answers_run: Path, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise RuntimeError("chromium is not installed (run scripts/ensure-test-services.sh)")
    screenshot = tmp_path / "eval-report.png"
    shown = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1280,1600",
            f"--screenshot={screenshot}",
            answers_run.with_suffix(".html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert shown.returncode == 0, shown.stderr
    png = screenshot.read_bytes()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "eval-report.png").write_bytes(png)
    width, height, colours = png_summary(png)
    assert (width, height) == (1280, 1600)
    assert len(png) > 20_000
    # text, table rules, blue bars and a white page: far from one colour
    assert colours > 50


def png_summary(data: bytes) -> tuple[int, int, int]:
    """Width, height and the number of distinct colours of an 8-bit RGB(A) PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8
            assert interlace == 0
            channels = {2: 3, 6: 4}[colour_type]
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else up if pb <= pc else up_left
                line[i] = (line[i] + predictor) & 0xFF
        if row % 8 == 0:  # every 8th row is plenty to count colours
            colours.update(bytes(line[i : i + 3]) for i in range(0, stride, channels))
        previous = line
    return width, height, len(colours)
