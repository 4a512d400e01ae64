"""Tests read nothing beside the repository: the guard, and the test sources themselves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ..repository_guard import REPOSITORY, Guard, OutsideRepositoryError, install


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Guard]:
    parent = tmp_path / "work"
    repository = parent / "gatehouse"
    (repository / "tests").mkdir(parents=True)
    (parent / "shared" / "data").mkdir(parents=True)
    return parent, Guard(repository, allowed=(parent / "python",))


@pytest.mark.parametrize(
    ("relative", "refused"),
    [
        ("shared/data/corpus.jsonl", True),
        ("gatehouse/../shared/data", True),
        ("other-project/README.md", True),
        ("gatehouse/tests/fixtures/essays.jsonl", False),
        ("gatehouse/.venv/lib/site.py", False),
        (".cache/gatehouse/onnx/minilm.onnx", False),  # when the parent is the home directory
        ("python/lib/os.py", False),  # an allowed root: a Python prefix, the temp directory
        ("", False),  # the parent itself: git and pytest look for markers there
    ],
)
def test_only_paths_beside_the_repository_are_refused(
    layout: tuple[Path, Guard], relative: str, refused: bool
) -> None:
    parent, guard = layout
    assert guard.out_of_bounds(str(parent / relative)) is refused


def test_paths_far_from_the_repository_are_allowed(layout: tuple[Path, Guard]) -> None:
    _, guard = layout
    for path in ("/proc/cpuinfo", "/dev/null", "/usr/lib/python3/os.py"):
        assert not guard.out_of_bounds(path)


def test_a_symlink_out_of_the_repository_is_followed(layout: tuple[Path, Guard]) -> None:
    parent, guard = layout
    link = guard.repository / "tests" / "data"
    link.symlink_to(parent / "shared" / "data")
    assert guard.out_of_bounds(str(link / "corpus.jsonl"))
    with pytest.raises(OutsideRepositoryError, match="outside the repository"):
        guard("os.scandir", (link,))
    with pytest.raises(OutsideRepositoryError):
        guard("open", (str(link / "corpus.jsonl").encode(), "r", 0))
    guard("open", (3, "r", 0))  # a file descriptor: nothing to resolve
    assert len(guard.refused) == 2


def test_the_session_guard_refuses_an_open_beside_the_repository() -> None:
    guard = install()
    beside = REPOSITORY.parent / "shared" / "no-such-file"
    if not guard.out_of_bounds(str(beside)):
        pytest.skip(f"the clone's parent {REPOSITORY.parent} is itself an allowed place")
    before = len(guard.refused)
    with pytest.raises(OutsideRepositoryError):
        open(beside)  # noqa: SIM115
    assert len(guard.refused) == before + 1
    del guard.refused[before:]  # refused on purpose: do not fail this test for it


# Spelled so that this file does not match itself: `"shared" / "data"`,
# `shared/data`, `../shared` and `parents[n] / "shared"`.
OUTSIDE = re.compile(
    r"""["']shared["']\s*/\s*["']data|shared[/\\]data|\.\.[/\\]shared|/\s*["']shared["']"""
)


def test_no_test_source_names_a_path_beside_the_repository() -> None:
    tests = REPOSITORY / "tests"
    offenders = [
        f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}"
        for path in sorted(tests.rglob("*"))
        if path.is_file()
        and path.suffix in {".py", ".jsonl", ".json", ".md", ".yaml", ".txt"}
        and path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1)
        if OUTSIDE.search(line)
    ]
    assert not offenders, "tests must ship their data under tests/fixtures/:\n" + "\n".join(
        offenders
    )


def test_a_clone_at_the_top_of_the_file_system_refuses_nothing(tmp_path: Path) -> None:
    guard = Guard(Path("/repo"))
    assert not guard.out_of_bounds("/usr/lib/python3/site.py")
    assert not guard.out_of_bounds("/etc/hosts")


def test_a_clone_under_the_temporary_directory_is_still_guarded() -> None:
    guard = Guard(Path("/tmp/ci/main"), allowed=(Path("/tmp"),))
    assert guard.out_of_bounds("/tmp/ci/shared/data/corpus.jsonl")
    assert not guard.out_of_bounds("/tmp/pytest-of-root/pytest-1/test0/x")
    assert not guard.out_of_bounds("/tmp/ci/main/tests/fixtures/x")


def test_an_allowed_place_beside_the_clone_stays_allowed() -> None:
    guard = Guard(Path("/home/u/main"), allowed=(Path("/home/u/venv"),))
    assert not guard.out_of_bounds("/home/u/venv/lib/site.py")
    assert guard.out_of_bounds("/home/u/shared/data")
