"""Supply chain: the hash-locked server dependencies and the reproducible wheel.

``make lock`` writes requirements/server.lock (pip-compile --generate-hashes);
these tests check, without the network, that it still covers pyproject's
dependencies with a hash for every pin, and that two builds of the wheel from
two copies of the tree (``make dist``'s way) are byte for byte the same.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "server.lock"
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s\\]+)")


def _pins() -> dict[str, tuple[str, list[str]]]:
    """Each pinned package: its version and the hashes listed under it."""
    pins: dict[str, tuple[str, list[str]]] = {}
    current: str | None = None
    for line in LOCK.read_text().splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            pins[current] = (match[2], [])
        elif current is not None and (found := re.search(r"--hash=(sha256:[0-9a-f]{64})", line)):
            pins[current][1].append(found[1])
    return pins


def test_the_lock_pins_every_server_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is missing from {LOCK.name}: run `make lock`"
        version = pins[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name}=={version} in {LOCK.name} is outside {requirement}: run `make lock`"
        )


def test_every_pin_carries_hashes_and_no_optional_extra_slipped_in() -> None:
    pins = _pins()
    assert len(pins) > 20
    assert [name for name, (_, hashes) in pins.items() if not hashes] == []
    # The server's set alone: the local models' and the dev tools' are not in it.
    assert {"torch", "llama-cpp-python", "pytest", "schemathesis"} & set(pins) == set()


def _tracked_copy(destination: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for raw in filter(None, files):
        source = ROOT / os.fsdecode(raw)
        if source.is_file():
            target = destination / os.fsdecode(raw)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)  # new mtimes: only the epoch may decide
    return destination


def _build(tree: Path, epoch: str) -> str:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", "dist", "."],
        cwd=tree,
        env={**os.environ, "SOURCE_DATE_EPOCH": epoch},
        capture_output=True,
        check=True,
    )
    (wheel,) = (tree / "dist").glob("*.whl")
    return hashlib.sha256(wheel.read_bytes()).hexdigest()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_wheel_is_built_byte_for_byte_the_same_twice(tmp_path: Path) -> None:
    epoch = "1767225600"  # any fixed time: `make dist` uses the last commit's
    first = _build(_tracked_copy(tmp_path / "a"), epoch)
    second = _build(_tracked_copy(tmp_path / "b"), epoch)
    assert first == second
