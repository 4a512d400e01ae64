"""Eval scores per model, from the JSON runs that ``gatehouse eval`` writes.

A run names the model it evaluated (``settings.model``). Its score for a task:

- a ``capabilities`` run: the pass rate of the task's ``eval_suite`` when the
  task names one (None when the run did not test that suite), else its overall
  pass rate;
- an ``answers`` run: for the ``rag`` task only, the mean of its metrics'
  means (each in 0..1).

The newest run (``created_at``) with a score for the task wins per model.
Files that are not eval runs are skipped and reported, not fatal: an output
folder may hold other JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gatehouse.catalog.models import TaskProfile
from gatehouse.core.errors import ValidationFailedError
from gatehouse.evals.results import EvalRun, read_run

PASS_RATE = "pass_rate"


@dataclass(frozen=True, slots=True)
class ScoredRun:
    model: str
    score: float
    created_at: str
    source: str


def run_score(run: EvalRun, task: str, profile: TaskProfile) -> float | None:
    """The run's score for ``task`` in 0..1, or None when it says nothing of it."""
    if run.kind == "capabilities":
        summary = run.summary if profile.eval_suite is None else run.groups.get(profile.eval_suite)
        found = (summary or {}).get(PASS_RATE)
        return None if found is None else found.mean
    if task != "rag":
        return None
    means = [s.mean for s in run.summary.values() if s.mean is not None]
    return sum(means) / len(means) if means else None


def read_runs(folder: Path) -> tuple[list[tuple[Path, EvalRun]], list[str]]:
    """Every eval run in ``folder`` (not recursive), and one line per file skipped."""
    runs: list[tuple[Path, EvalRun]] = []
    skipped: list[str] = []
    if not folder.is_dir():
        return runs, skipped
    for path in sorted(folder.glob("*.json")):
        try:
            runs.append((path, read_run(path)))
        except ValidationFailedError as exc:
            skipped.append(exc.message)
    return runs, skipped


def best_scores(
    runs: Iterable[tuple[Path, EvalRun]],
    task: str,
    profile: TaskProfile,
    aliases: Mapping[str, str],
) -> dict[str, ScoredRun]:
    """Model group -> its newest scored run for ``task`` (a run of an alias
    counts for the group it names)."""
    found: dict[str, ScoredRun] = {}
    for path, run in runs:
        model = run.settings.get("model")
        if not isinstance(model, str):
            continue
        score = run_score(run, task, profile)
        if score is None:
            continue
        model = aliases.get(model, model)
        current = found.get(model)
        if current is None or run.created_at > current.created_at:
            found[model] = ScoredRun(model, score, run.created_at, str(path))
    return found
