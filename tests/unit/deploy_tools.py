"""Where the tests of deploy/ find helm and the docker compose plugin.

`make test` installs both, pinned, into .tools/ (scripts/ensure-deploy-tools.sh);
a helm or compose plugin of the machine's own is used when .tools/ has none.
A missing tool fails the test with the command that installs it: a skip would
let the chart or the compose file break unseen.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
TOOLS = ROOT / ".tools"
INSTALL = "`make deploy-tools` (sh scripts/ensure-deploy-tools.sh) installs it into .tools/"


def helm() -> str:
    """The helm binary."""
    pinned = TOOLS / "bin" / "helm"
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("helm")
    if found is None:
        pytest.fail(f"helm is missing: {INSTALL}")
    return found


def docker_compose() -> tuple[list[str], dict[str, str]]:
    """The `docker compose` command and the environment it runs in."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("the docker client is missing (no engine is needed, only the CLI)")
    env = dict(os.environ)
    if (TOOLS / "docker" / "cli-plugins" / "docker-compose").is_file():
        # The CLI looks for plugins in $DOCKER_CONFIG/cli-plugins first.
        env["DOCKER_CONFIG"] = str(TOOLS / "docker")
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, text=True, env=env, check=False
    )
    if probe.returncode != 0:
        pytest.fail(f"the docker compose plugin is missing: {INSTALL}")
    return [docker, "compose"], env
