"""The Dockerfile and its entrypoint (no image is built: no engine runs here).

What can be checked without building: the builder compiles llama.cpp with the
flags `make install` uses, the runtime runs as a non-root user with a health
check on a public route, and the entrypoint turns secret files into gatehouse's
environment variables.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from gatehouse.server.authz import PUBLIC
from gatehouse.server.routes.health import ROUTES as HEALTH_ROUTES

from .deploy_tools import DEPLOY, ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"


def _stages() -> dict[str, str]:
    """Each build stage's instructions, by stage name."""
    parts = re.split(r"^FROM \S+ AS (\w+)\s*$", DOCKERFILE, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def test_llama_cpp_is_built_with_the_makefile_flags() -> None:
    makefile = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    make_args = re.search(r"^LLAMA_CMAKE_ARGS\s*:=\s*(.+)$", makefile, re.MULTILINE)
    docker_args = re.search(r'^ARG LLAMA_CMAKE_ARGS="([^"]*)"', DOCKERFILE, re.MULTILINE)
    assert make_args is not None
    assert docker_args is not None
    assert shlex.split(docker_args.group(1)) == shlex.split(make_args.group(1))
    assert 'CMAKE_ARGS="$LLAMA_CMAKE_ARGS $LLAMA_CPU_ARGS"' in _stages()["builder"]


def test_the_runtime_stage_has_no_compiler_and_runs_as_a_user() -> None:
    stages = _stages()
    assert list(stages) == ["builder", "runtime"]
    runtime = stages["runtime"]
    assert "build-essential" in stages["builder"]
    assert not re.search(r"build-essential|\bgcc\b|\bg\+\+|\bcmake\b", runtime)
    users = re.findall(r"^USER (\S+)", runtime, re.MULTILINE)
    assert users == ["10001:10001"]
    assert re.search(r"^ENTRYPOINT \[\"gatehouse-entrypoint\"\]$", runtime, re.MULTILINE)
    assert re.search(r'^CMD \["serve"\]$', runtime, re.MULTILINE)


def test_the_health_check_asks_a_public_liveness_route() -> None:
    check = re.search(r"^HEALTHCHECK .*\n\s+CMD (\[.*\])$", DOCKERFILE, re.MULTILINE)
    assert check is not None
    command = json.loads(check.group(1))
    path = re.search(r"http://127\.0\.0\.1:%s(/\w+)", command[-1])
    assert path is not None
    (route,) = [spec for spec in HEALTH_ROUTES if spec.path == path.group(1)]
    assert route.scope == PUBLIC
    assert path.group(1) == "/healthz"


def test_the_build_context_leaves_out_everything_but_the_package() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") + 1 :][:4] == [
        "!pyproject.toml",
        "!README.md",
        "!src/",
        "!deploy/docker/",
    ]
    copied = re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+(?: \S+)*) \S+$", DOCKERFILE, re.M)
    for sources in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), source


@dataclass
class Entrypoint:
    """The entrypoint with a stand-in `gatehouse` on PATH that prints its arguments
    and the GATEHOUSE_* environment it was given, as JSON."""

    bin_dir: Path
    secrets: Path

    def run(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = {
            "PATH": f"{self.bin_dir}{os.pathsep}/usr/bin:/bin",
            "GATEHOUSE_ENTRYPOINT_SECRETS_DIR": str(self.secrets),
            **(env or {}),
        }
        return subprocess.run(
            ["sh", str(ENTRYPOINT), *args], capture_output=True, text=True, env=environ
        )


@pytest.fixture
def entrypoint(tmp_path: Path) -> Entrypoint:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "gatehouse"
    stand_in.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('GATEHOUSE_')}\n"
        "print(json.dumps({'argv': sys.argv[1:], 'env': env}))\n"
    )
    stand_in.chmod(0o755)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    return Entrypoint(bin_dir, secrets)


def test_the_entrypoint_turns_secret_files_into_settings(entrypoint: Entrypoint) -> None:
    secrets = entrypoint.secrets
    (secrets / "GATEHOUSE_MASTER_KEY").write_text("sk-master\n")
    (secrets / "GATEHOUSE_STORE__DATABASE_URL").write_text("postgresql://u:p@db/gh")
    (secrets / "postgres_password").write_text("not for gatehouse")
    done = entrypoint.run("serve", "--role", "gateway", env={"GATEHOUSE_SERVER__PORT": "9000"})
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["argv"] == ["serve", "--role", "gateway"]
    # The folder's own variable is not passed on: gatehouse would read it as a setting.
    assert seen["env"] == {
        "GATEHOUSE_MASTER_KEY": "sk-master",
        "GATEHOUSE_STORE__DATABASE_URL": "postgresql://u:p@db/gh",
        "GATEHOUSE_SERVER__PORT": "9000",
    }


def test_the_entrypoint_refuses_a_secret_also_in_the_environment(entrypoint: Entrypoint) -> None:
    (entrypoint.secrets / "GATEHOUSE_MASTER_KEY").write_text("from the file")
    done = entrypoint.run("serve", env={"GATEHOUSE_MASTER_KEY": "from the environment"})
    assert done.returncode == 64
    assert done.stdout == ""
    assert "GATEHOUSE_MASTER_KEY is set both in the environment" in done.stderr
    assert "from the" not in done.stderr  # neither value is printed


def test_the_entrypoint_runs_without_a_secrets_folder(entrypoint: Entrypoint) -> None:
    entrypoint.secrets.rmdir()
    done = entrypoint.run("db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"argv": ["db", "upgrade"], "env": {}}
