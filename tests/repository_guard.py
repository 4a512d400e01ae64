"""Tests may not touch files beside the repository: a clone has nothing there.

A checkout on a development machine often sits next to other folders (data
sets, other projects); a test that reads one of them passes there and fails
on a fresh clone. ``install`` adds an audit hook that refuses every ``open``,
``os.listdir`` and ``os.scandir`` of a path that resolves into the
repository's parent directory but not into the repository. Hidden entries of
that directory stay allowed (when the parent is the home directory they are
caches and configuration: ``~/.cache/gatehouse`` holds the exported ONNX
files), and so do the temporary directory and Python's own prefixes.

The hook sees this process only; servers started by fixtures run our code on
the same inputs, which ``tests/unit/test_repository_guard.py`` checks by
reading the test sources for paths out of the repository.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
WATCHED_EVENTS = frozenset({"open", "os.listdir", "os.scandir"})


class OutsideRepositoryError(RuntimeError):
    """A test touched a path beside the repository."""


@dataclass
class Guard:
    """Decides which paths are out of bounds and remembers every refusal."""

    repository: Path
    allowed: tuple[Path, ...] = ()
    refused: list[str] = field(default_factory=list)

    def out_of_bounds(self, path: str) -> bool:
        """Whether ``path`` resolves beside the repository (under its parent, not in it)."""
        parent = self.repository.parent
        absolute = os.path.abspath(path)
        # Cheap string test first: almost every open is under /usr, /proc or /tmp.
        if parent == self.repository or not absolute.startswith(str(parent)):
            return False
        if parent == Path(parent.anchor):
            # A clone at the top of the file system has no "beside" that is
            # not the whole system: nothing to tell apart.
            return False
        real = Path(os.path.realpath(absolute))
        if not real.is_relative_to(parent) or real == parent:
            return False
        if real.is_relative_to(self.repository):
            return False
        if real.relative_to(parent).parts[0].startswith("."):
            return False
        # An allowed root exempts what lies beside the repository only when it is
        # itself there (a virtual environment beside the clone, or the temporary
        # directory when the clone sits directly in it). One that holds the whole
        # parent (a clone under /tmp/ci/) would otherwise exempt everything.
        return not any(
            real.is_relative_to(root) for root in self.allowed if root.is_relative_to(parent)
        )

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in WATCHED_EVENTS or not args:
            return
        path = args[0]
        if isinstance(path, os.PathLike):
            path = os.fspath(path)
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if isinstance(path, str) and self.out_of_bounds(path):
            self.refused.append(path)
            raise OutsideRepositoryError(
                f"tests may not read or write outside the repository: {path} "
                "(ship what the test needs under tests/fixtures/)"
            )


_installed: Guard | None = None


def install() -> Guard:
    """Add the audit hook once per process (audit hooks cannot be removed)."""
    global _installed
    if _installed is None:
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
        allowed = tuple(Path(p).resolve() for p in (tempfile.gettempdir(), *prefixes))
        _installed = Guard(REPOSITORY, allowed)
        sys.addaudithook(_installed)
    return _installed
