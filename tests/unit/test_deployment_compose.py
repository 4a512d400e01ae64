"""deploy/docker-compose.yml: `docker compose config` accepts it (the client and
its compose plugin only: no engine runs here, nothing is started), and the
files it mounts agree with it and with gatehouse (settings, services, secrets).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gatehouse.cli.main import build_parser
from gatehouse.core.config import load_settings

from .deploy_tools import DEPLOY, ROOT, docker_compose

COMPOSE = DEPLOY / "docker-compose.yml"
GATEHOUSE_SERVICES = ("migrate", "gateway", "rag")
SERVERS = ("gateway", "rag")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as `docker compose config` resolves and validates it."""
    command, env = docker_compose()
    done = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--format", "json"],
        capture_output=True,
        text=True,
        env={k: v for k, v in env.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = json.loads(done.stdout)
    return config


def test_the_gateway_runs_two_replicas_and_the_rag_service_its_own_role(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["gateway"]["deploy"]["replicas"] == 2
    assert services["gateway"]["command"] == ["serve", "--role", "gateway"]
    assert services["rag"]["command"] == ["serve", "--role", "rag"]
    assert services["rag"]["environment"]["GATEHOUSE_RAG__GATEWAY_URL"] == "http://nginx:8080"
    for name in GATEHOUSE_SERVICES:
        assert services[name]["image"] == services["gateway"]["image"]
        build_parser().parse_args(services[name]["command"])  # a command gatehouse knows
    assert {"postgres", "redis", "chroma", "nginx", "prometheus", "grafana"} <= set(services)


def test_migrations_run_once_before_any_server(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["db", "upgrade"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in SERVERS:
        needs = services[name]["depends_on"]["migrate"]
        assert needs["condition"] == "service_completed_successfully"


def test_the_settings_file_is_valid_for_each_role(compose: dict[str, Any]) -> None:
    (config,) = compose["services"]["gateway"]["configs"]
    assert config["target"] == "/etc/gatehouse/gatehouse.yaml"
    path = Path(compose["configs"][config["source"]]["file"])
    for name in SERVERS:
        service = compose["services"][name]
        assert service["environment"]["GATEHOUSE_CONFIG"] == config["target"]
        env = {k: v for k, v in service["environment"].items() if k.startswith("GATEHOUSE_")}
        env |= {"GATEHOUSE_MASTER_KEY": "sk-test", "GATEHOUSE_SERVER__ROLE": name}
        settings = load_settings(path, environ=env)
        assert settings.server.role == name
        # Replicas share counters and the cache; migrations are the migrate service's.
        assert settings.store.redis_url is not None
        assert settings.cache.redis_url is not None
        assert settings.store.auto_upgrade is False
        assert settings.rag.vector_backend == "chroma"
        grace = float(re.sub(r"s$", "", service["stop_grace_period"]))
        assert (
            grace > settings.server.shutdown_delay_seconds + settings.server.drain_timeout_seconds
        )


def test_secrets_come_from_files_never_from_the_compose_file(compose: dict[str, Any]) -> None:
    for name in ("gateway", "rag", "migrate"):
        targets = {s["target"] for s in compose["services"][name]["secrets"]}
        assert "/run/secrets/GATEHOUSE_STORE__DATABASE_URL" in targets
        if name != "migrate":
            assert "/run/secrets/GATEHOUSE_MASTER_KEY" in targets
    folder = DEPLOY / "secrets"
    for secret in compose["secrets"].values():
        assert Path(secret["file"]).parent == folder
    assert "/deploy/secrets/" in (ROOT / ".gitignore").read_text().split()
    # Every literal environment value in the file is harmless: a variable that
    # names a credential is either passed through from the shell or a file path.
    raw = yaml.safe_load(COMPOSE.read_text())
    credential = re.compile(r"KEY|PASSWORD|SECRET|TOKEN|DATABASE_URL", re.IGNORECASE)
    for service in raw["services"].values():
        for variable, value in (service.get("environment") or {}).items():
            if credential.search(variable):
                assert re.fullmatch(r"\$\{\w+:-\}|/run/secrets/\w+", str(value)), variable


def test_make_secrets_writes_every_secret_the_file_names(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "secrets"
    done = subprocess.run(
        ["sh", str(DEPLOY / "make-secrets.sh"), str(folder)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    expected = {Path(secret["file"]).name for secret in compose["secrets"].values()}
    assert {path.name for path in folder.iterdir()} == expected
    password = (folder / "postgres_password").read_text()
    assert (folder / "database_url").read_text() == (
        f"postgresql://gatehouse:{password}@postgres:5432/gatehouse"
    )
    assert (
        load_settings(
            environ={"GATEHOUSE_STORE__DATABASE_URL": (folder / "database_url").read_text()}
        ).store.database_url
        is not None
    )
    # A second run keeps what exists (the database was created with that password).
    before = {path.name: path.read_text() for path in folder.iterdir()}
    subprocess.run(["sh", str(DEPLOY / "make-secrets.sh"), str(folder)], check=True)
    assert {path.name: path.read_text() for path in folder.iterdir()} == before


def test_nginx_sends_the_rag_api_to_the_rag_service(compose: dict[str, Any]) -> None:
    (mount,) = [v for v in compose["services"]["nginx"]["volumes"] if v["type"] == "bind"]
    assert mount["target"] == "/etc/nginx/nginx.conf"
    conf = Path(mount["source"]).read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{[^}]*?server (\S+) resolve;", conf))
    assert upstreams == {"gatehouse_gateway": "gateway:8080", "gatehouse_rag": "rag:8080"}
    locations = dict(re.findall(r"location (?:= )?(\S+) \{\s*(?:proxy_pass|return) (\S+);", conf))
    assert locations == {
        "/v1/rag/": "http://gatehouse_rag",
        "/metrics": "404",
        "/": "http://gatehouse_gateway",
    }
    assert re.search(r"^\s*proxy_buffering off;", conf, re.MULTILINE)


def test_prometheus_scrapes_every_server_and_loads_the_alert_rules(
    compose: dict[str, Any],
) -> None:
    mounts = {
        v["target"]: Path(v["source"])
        for v in compose["services"]["prometheus"]["volumes"]
        if v["type"] == "bind"
    }
    assert mounts["/etc/prometheus/alerts.yml"] == DEPLOY / "prometheus" / "alerts.yml"
    config_file = mounts["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_file.read_text())
    assert config["rule_files"] == ["alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "gatehouse"  # the name the alert rules expect
    names = [name for sd in job["dns_sd_configs"] for name in sd["names"]]
    assert sorted(names) == sorted(SERVERS)
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: `make services` installs Debian's prometheus package")
    check = subprocess.run(
        [promtool, "check", "config", str(config_file)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {v["target"]: Path(v["source"]) for v in grafana["volumes"] if v["type"] == "bind"}
    dashboard = mounts["/var/lib/grafana/dashboards/gatehouse.json"]
    assert dashboard == DEPLOY / "grafana" / "gatehouse.json"
    provisioning = mounts["/etc/grafana/provisioning"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "gatehouse.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]
    # The dashboard's panels pick their data source through this variable.
    variables = json.loads(dashboard.read_text())["templating"]["list"]
    assert {"name": "datasource", "type": "datasource", "query": "prometheus"}.items() <= next(
        v for v in variables if v["name"] == "datasource"
    ).items()
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == (
        "/run/secrets/grafana_admin_password"
    )
