"""Readers and a writer for the files of retrieval evaluation.

- qrels in TREC format, ``qid iter docid rel`` separated by white space (the
  ``iter`` column is ignored, usually ``0``), or BEIR TSV: a header line
  ``query-id<TAB>corpus-id<TAB>score``, then one judgment a line. The first
  line tells the formats apart: three tab-separated fields mean BEIR TSV, so
  a BEIR file without its header (some copies lose it) still reads, its first
  line a judgment. Relevance is an integer. A judgment repeated with
  the same relevance is accepted; with another relevance it is an error.
- runs in TREC run format, ``qid Q0 docid rank score tag``. Documents are
  ranked by score (see :func:`gatehouse.evals.metrics.rank`); the ``Q0`` and
  rank columns are read but not used, as trec_eval does. A document listed
  twice for a query is an error (trec_eval refuses it too).
- queries in BEIR ``queries.jsonl``: one JSON object a line with ``_id`` and
  ``text``;
- answer sets (``eval answers``): one JSON object a line with ``id``,
  ``question`` and optionally ``reference``.

Blank lines are skipped. Anything else that does not fit is a
:class:`~gatehouse.core.errors.ValidationFailedError` whose one-line message
starts with ``file:line:``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import orjson

from gatehouse.core.errors import ValidationFailedError

BEIR_HEADER = ["query-id", "corpus-id", "score"]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Judgments from a TREC qrels file or a BEIR TSV file, told apart by the first line."""
    lines = _lines(path)
    first = next(lines, None)
    if first is None:
        raise ValidationFailedError(f"{path}: no judgments")
    fields = first[1].rstrip("\r").split("\t")
    beir = len(fields) == 3
    if fields != BEIR_HEADER:
        lines = _chain(first, lines)
    qrels: dict[str, dict[str, int]] = {}
    for number, line in lines:
        if beir:
            fields = line.rstrip("\r").split("\t")
            if len(fields) != 3 or not all(f.strip() for f in fields):
                _fail(path, number, f"expected 3 tab-separated fields, found {len(fields)}")
            query, doc, value = (f.strip() for f in fields)
        else:
            fields = line.split()
            if len(fields) != 4:
                hint = " (BEIR TSV separates its 3 fields by tabs)" if len(fields) == 3 else ""
                _fail(
                    path, number, f"expected 4 fields 'qid 0 docid rel', found {len(fields)}{hint}"
                )
            query, _, doc, value = fields
        relevance = _int(path, number, value, "relevance")
        judged = qrels.setdefault(query, {})
        if judged.get(doc, relevance) != relevance:
            _fail(path, number, f"document {doc} of query {query} judged again, differently")
        judged[doc] = relevance
    if not qrels:
        raise ValidationFailedError(f"{path}: no judgments")
    return qrels


def read_run(path: Path) -> dict[str, dict[str, float]]:
    """Scores from a TREC run file: query id -> document id -> score."""
    run: dict[str, dict[str, float]] = {}
    for number, line in _lines(path):
        fields = line.split()
        if len(fields) != 6:
            _fail(
                path,
                number,
                f"expected 6 fields 'qid Q0 docid rank score tag', found {len(fields)}",
            )
        query, _, doc, _, value, _ = fields
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            _fail(path, number, f"the score {value!r} is not a finite number")
        docs = run.setdefault(query, {})
        if doc in docs:
            _fail(path, number, f"document {doc} listed twice for query {query}")
        docs[doc] = score
    return run


def read_queries(path: Path) -> dict[str, str]:
    """Query id -> text from a BEIR ``queries.jsonl``."""
    queries: dict[str, str] = {}
    for number, row in _json_lines(path):
        query, text = row.get("_id"), row.get("text")
        if not isinstance(query, str | int) or isinstance(query, bool):
            _fail(path, number, "each line needs an '_id' (a string)")
        if not isinstance(text, str) or not text.strip():
            _fail(path, number, "each line needs a non-empty string 'text'")
        if str(query) in queries:
            _fail(path, number, f"query {query} appears twice")
        queries[str(query)] = text
    return queries


def write_run(path: Path, ranking: Mapping[str, Sequence[str]], tag: str) -> None:
    """Write ``ranking`` as a TREC run. Scores are derived from the rank (the
    first of n documents scores n), so reading the file back, with trec_eval's
    ordering by score, gives exactly this order."""
    with path.open("w", encoding="utf-8") as out:
        for query, docs in ranking.items():
            for i, doc in enumerate(docs):
                out.write(f"{query} Q0 {doc} {i + 1} {len(docs) - i} {tag}\n")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Numbered non-blank lines of ``path``; a missing or unreadable file is one clear error.

    Lines end at ``\n`` only (a trailing ``\r`` is white space to the readers),
    so the numbers are the ones an editor shows."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValidationFailedError(f"{path}: no such file") from None
    except OSError as exc:
        raise ValidationFailedError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        number = data[: exc.start].count(b"\n") + 1
        raise ValidationFailedError(f"{path}:{number}: not UTF-8 text") from None
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield number, line


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Numbered JSON objects of a JSONL file; anything else on a line is an error."""
    for number, line in _lines(path):
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            _fail(path, number, "not a JSON object")
        if not isinstance(row, dict):
            _fail(path, number, "not a JSON object")
        yield number, row


def _chain(first: tuple[int, str], rest: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    yield first
    yield from rest


def _int(path: Path, number: int, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        _fail(path, number, f"the {what} {value!r} is not an integer")


def _fail(path: Path, number: int, problem: str) -> NoReturn:
    raise ValidationFailedError(f"{path}:{number}: {problem}")


def read_answer_set(path: Path) -> list[LabelledQuestion]:
    """Labelled questions from JSONL: ``{"id", "question", "reference"}`` a line.

    ``reference`` (the expected answer) is a string or a list of acceptable
    strings, and may be left out: the metrics that need it are then skipped
    for that question. ``id`` is a string (a number is read as its text).
    """
    questions: list[LabelledQuestion] = []
    seen: set[str] = set()
    for number, row in _json_lines(path):
        ident, question = row.get("id"), row.get("question")
        if not isinstance(ident, str | int) or isinstance(ident, bool) or not str(ident).strip():
            _fail(path, number, "each line needs an 'id' (a string)")
        if not isinstance(question, str) or not question.strip():
            _fail(path, number, "each line needs a non-empty string 'question'")
        reference = row.get("reference")
        references = [reference] if isinstance(reference, str) else reference
        if references is None:
            references = []
        if not isinstance(references, list) or not all(
            isinstance(r, str) and r.strip() for r in references
        ):
            _fail(path, number, "'reference' must be a non-empty string or a list of them")
        if str(ident) in seen:
            _fail(path, number, f"question {ident} appears twice")
        seen.add(str(ident))
        questions.append(LabelledQuestion(str(ident), question, list(references)))
    if not questions:
        raise ValidationFailedError(f"{path}: no questions")
    return questions


@dataclass(frozen=True, slots=True)
class LabelledQuestion:
    """A question of an answer set, with its acceptable answers (maybe none)."""

    id: str
    question: str
    references: list[str]
