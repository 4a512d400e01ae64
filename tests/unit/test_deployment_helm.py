"""deploy/helm/gatehouse: `helm template` renders it, every manifest passes the
Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields are
errors) of the oldest and newest Kubernetes the chart supports, and what the
manifests say agrees with gatehouse: its routes, settings, metrics and roles.
No cluster runs here.
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gatehouse.cli.main import build_parser
from gatehouse.core.config import load_settings
from gatehouse.observability.live_metrics import DeploymentCollector, DeploymentState

from .deploy_tools import DEPLOY, helm

CHART = DEPLOY / "helm" / "gatehouse"
# The oldest Kubernetes the chart declares (Chart.yaml kubeVersion) and the newest
# the validator knows.
KUBERNETES = ["1.25.0", kubernetes_validate.latest_version()]
SECRET = "gatehouse-secrets"
# Everything optional switched on: every template renders.
FULL = [
    f"secrets.existingSecret={SECRET}",
    "ingress.enabled=true",
    "ingress.className=nginx",
    "serviceMonitor.enabled=true",
    "gateway.autoscaling.inFlight.enabled=true",
    "chromaUrl=http://chroma:8000",
    "rag.pdb.enabled=true",
]
VARIANTS = {
    "defaults": [f"secrets.existingSecret={SECRET}"],
    "everything": FULL,
    "a volume per gateway": [
        f"secrets.existingSecret={SECRET}",
        "gateway.persistence.enabled=true",
        "gateway.persistence.storageClass=fast",
    ],
    "one role, no database, no autoscaling": [
        f"secrets.existingSecret={SECRET}",
        "rag.enabled=false",
        "secrets.databaseUrlKey=",
        "secrets.redisUrlKey=",
        "gateway.autoscaling.enabled=false",
        "gateway.replicaCount=1",
        "ingress.enabled=true",
    ],
}
# Resources whose schema is a CustomResourceDefinition's, not Kubernetes' own.
CUSTOM = {"ServiceMonitor"}

Manifests = list[dict[str, Any]]


def _template(*sets: str) -> subprocess.CompletedProcess[str]:
    args = [arg for value in sets for arg in ("--set", value)]
    return subprocess.run(
        [helm(), "template", "release", str(CHART), "--namespace", "llm", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def render(*sets: str) -> Manifests:
    done = _template(*sets)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Manifests]:
    return {name: render(*sets) for name, sets in VARIANTS.items()}


def only(manifests: Manifests, kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    return found


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    return found


def env_of(deployment: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}


def test_the_chart_lints() -> None:
    done = subprocess.run(
        [helm(), "lint", "--strict", str(CHART), "--set", f"secrets.existingSecret={SECRET}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("version", KUBERNETES)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_manifest_passes_the_kubernetes_schemas(
    rendered: dict[str, Manifests], variant: str, version: str
) -> None:
    unchecked = []
    for manifest in rendered[variant]:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            unchecked.append(manifest["kind"])
        except kubernetes_validate.ValidationError as exc:
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            pytest.fail(f"{name} is invalid on Kubernetes {version}: {exc.message}")
    assert set(unchecked) <= CUSTOM


def test_the_validation_catches_a_broken_manifest(rendered: dict[str, Manifests]) -> None:
    """So that a green schema check means something."""
    broken = copy.deepcopy(only(rendered["everything"], "Deployment", "release-gatehouse-gateway"))
    container(broken)["livenessProbe"]["httpGet"]["paht"] = "/healthz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES[0], strict=True)


def test_the_roles_are_deployed_apart(rendered: dict[str, Manifests]) -> None:
    manifests = rendered["everything"]
    gateway = only(manifests, "Deployment", "release-gatehouse-gateway")
    rag = only(manifests, "Deployment", "release-gatehouse-rag")
    assert container(gateway)["args"] == ["serve", "--role", "gateway"]
    assert container(rag)["args"] == ["serve", "--role", "rag"]
    for deployment in (gateway, rag):
        build_parser().parse_args(container(deployment)["args"])  # a command gatehouse knows
    service = only(manifests, "Service", "release-gatehouse-gateway")
    port = service["spec"]["ports"][0]["port"]
    assert env_of(rag)["GATEHOUSE_RAG__GATEWAY_URL"] == f"http://release-gatehouse-gateway:{port}"
    # Only the process serving the RAG API talks to Chroma (its readiness checks it).
    assert "GATEHOUSE_RAG__CHROMA_URL" in env_of(rag)
    assert "GATEHOUSE_RAG__CHROMA_URL" not in env_of(gateway)
    # The RAG service is one writer on its own volume.
    assert rag["spec"]["strategy"] == {"type": "Recreate"}
    volumes = {v["name"]: v for v in rag["spec"]["template"]["spec"]["volumes"]}
    claim = only(manifests, "PersistentVolumeClaim")
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    ingress = only(manifests, "Ingress")
    (rule,) = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes == {"/v1/rag/": "release-gatehouse-rag", "/": "release-gatehouse-gateway"}


def test_without_the_rag_service_the_gateway_serves_everything(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered["one role, no database, no autoscaling"]
    deployment = only(manifests, "Deployment")
    assert container(deployment)["args"] == ["serve", "--role", "all"]
    assert deployment["spec"]["replicas"] == 1
    assert [m["metadata"]["name"] for m in manifests if m["kind"] == "Service"] == [
        "release-gatehouse-gateway"
    ]
    (rule,) = only(manifests, "Ingress")["spec"]["rules"]
    assert [p["path"] for p in rule["http"]["paths"]] == ["/"]
    kinds = {m["kind"] for m in manifests}
    assert not kinds & {"HorizontalPodAutoscaler", "Job", "PersistentVolumeClaim"}


def test_probes_ask_the_health_routes_on_the_served_port(rendered: dict[str, Manifests]) -> None:
    for deployment in (m for m in rendered["everything"] if m["kind"] == "Deployment"):
        main = container(deployment)
        (port,) = main["ports"]
        assert port == {"name": "http", "containerPort": 8080, "protocol": "TCP"}
        assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert main["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert main["resources"]["requests"]
    dockerfile = (DEPLOY.parent / "Dockerfile").read_text()
    assert "GATEHOUSE_SERVER__PORT=8080" in dockerfile


def test_services_budgets_and_the_autoscaler_select_their_pods(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered["everything"]
    for deployment in (m for m in manifests if m["kind"] == "Deployment"):
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items()
        service = only(manifests, "Service", name)
        assert service["spec"]["selector"] == selector
        budget = only(manifests, "PodDisruptionBudget", name)
        assert budget["spec"]["selector"]["matchLabels"] == selector
    gateway = only(manifests, "Deployment", "release-gatehouse-gateway")
    assert "replicas" not in gateway["spec"]  # the autoscaler owns the count
    scaler = only(manifests, "HorizontalPodAutoscaler")
    assert scaler["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "release-gatehouse-gateway",
    }
    metrics = {m["type"]: m for m in scaler["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    assert metrics["Pods"]["pods"]["metric"]["name"] in _exported_metric_names()


def _exported_metric_names() -> set[str]:
    """The gauges gatehouse exports for each deployment, among them the in-flight count."""
    state = DeploymentState("d", "g", 3, "closed", 8, 0, 0, 0.1)
    return {family.name for family in DeploymentCollector(lambda: [state]).collect()}


def test_secrets_are_referenced_never_rendered(rendered: dict[str, Manifests]) -> None:
    manifests = rendered["everything"]
    assert "Secret" not in {m["kind"] for m in manifests}
    references = [
        value["secretKeyRef"]
        for m in manifests
        if m["kind"] in ("Deployment", "Job")
        for value in env_of(m).values()
        if isinstance(value, dict)
    ]
    assert references
    assert {ref["name"] for ref in references} == {SECRET}
    gateway = env_of(only(manifests, "Deployment", "release-gatehouse-gateway"))
    assert gateway["GATEHOUSE_MASTER_KEY"]["secretKeyRef"]["key"] == "master-key"
    assert gateway["GATEHOUSE_STORE__DATABASE_URL"]["secretKeyRef"]["key"] == "database-url"
    assert gateway["GATEHOUSE_STORE__REDIS_URL"]["secretKeyRef"]["key"] == "redis-url"


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("gateway.replicaCount=two", "/gateway/replicaCount"),
        ("ingres.enabled=true", "'ingres' not allowed"),
        ("service.type=Internal", "/service/type"),
    ],
)
def test_values_of_the_wrong_shape_are_refused(value: str, said: str) -> None:
    """values.schema.json: a typo or a wrong type stops the release, named."""
    done = _template(f"secrets.existingSecret={SECRET}", value)
    assert done.returncode != 0
    assert said in done.stderr


def test_a_release_without_a_secret_is_refused() -> None:
    done = _template()
    assert done.returncode != 0
    assert "secrets.existingSecret is required" in done.stderr


def _settings_of(manifests: Manifests, deployment: dict[str, Any], tmp_path: Path) -> Any:
    """The settings a container of ``deployment`` starts with: the ConfigMap's
    gatehouse.yaml and its environment, a placeholder for each secret."""
    config = only(manifests, "ConfigMap")["data"]["gatehouse.yaml"]
    path = tmp_path / f"{deployment['metadata']['name']}.yaml"
    path.write_text(config)
    placeholders: dict[str, Callable[[], str]] = {
        "master-key": lambda: "sk-placeholder",
        "database-url": lambda: "postgresql://gatehouse:x@postgres:5432/gatehouse",
        "redis-url": lambda: "redis://redis:6379/0",
    }
    env = {
        name: value if isinstance(value, str) else placeholders[value["secretKeyRef"]["key"]]()
        for name, value in env_of(deployment).items()
    }
    role = container(deployment)["args"][-1]
    env["GATEHOUSE_SERVER__ROLE"] = role
    return load_settings(path, environ=env)


def _deployments(manifests: Manifests) -> Iterator[dict[str, Any]]:
    """The workloads that run `gatehouse serve`."""
    return (m for m in manifests if m["kind"] in ("Deployment", "StatefulSet"))


def test_each_pod_starts_with_valid_settings(
    rendered: dict[str, Manifests], tmp_path: Path
) -> None:
    for variant, manifests in rendered.items():
        for deployment in _deployments(manifests):
            settings = _settings_of(manifests, deployment, tmp_path)
            assert settings.auth.master_key is not None, variant
            spec = deployment["spec"]["template"]["spec"]
            delay = settings.server.shutdown_delay_seconds
            assert (
                spec["terminationGracePeriodSeconds"]
                > delay + settings.server.drain_timeout_seconds
            )
            # A stopping pod keeps its port open until the readiness probe has had
            # time to fail and take it out of the endpoints (docs/operations.md).
            readiness = container(deployment)["readinessProbe"]
            assert delay > readiness["periodSeconds"] * readiness["failureThreshold"]
            mounts = {m["name"]: m["mountPath"] for m in container(deployment)["volumeMounts"]}
            assert mounts["data"] == "/var/lib/gatehouse"
            assert Path(env_of(deployment)["GATEHOUSE_CONFIG"]).parent == Path(mounts["config"])


def test_the_migration_runs_before_the_servers(rendered: dict[str, Manifests]) -> None:
    manifests = rendered["everything"]
    job = only(manifests, "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    (migrate,) = job["spec"]["template"]["spec"]["containers"]
    assert migrate["args"] == ["db", "upgrade"]
    assert build_parser().parse_args(migrate["args"]).command == "db"
    # A pre-install hook runs before the chart's ConfigMap exists: it needs none.
    assert {e["name"] for e in migrate["env"]} == {"GATEHOUSE_STORE__DATABASE_URL"}
    for deployment in _deployments(manifests):
        assert env_of(deployment)["GATEHOUSE_STORE__AUTO_UPGRADE"] == "false"
    # Without a database URL each pod has its own SQLite file, upgraded as it starts.
    single = rendered["one role, no database, no autoscaling"]
    assert "GATEHOUSE_STORE__AUTO_UPGRADE" not in env_of(only(single, "Deployment"))


def test_a_volume_per_gateway_makes_it_a_stateful_set(rendered: dict[str, Manifests]) -> None:
    manifests = rendered["a volume per gateway"]
    gateway = only(manifests, "StatefulSet")
    assert gateway["metadata"]["name"] == "release-gatehouse-gateway"
    assert (
        gateway["spec"]["serviceName"]
        == only(manifests, "Service", "release-gatehouse-gateway")["metadata"]["name"]
    )
    (claim,) = gateway["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["storageClassName"] == "fast"
    pod = gateway["spec"]["template"]["spec"]
    assert "data" not in {v["name"] for v in pod["volumes"]}  # the claim's, per replica
    mounts = {m["name"]: m["mountPath"] for m in container(gateway)["volumeMounts"]}
    assert mounts["data"] == "/var/lib/gatehouse"
    assert only(manifests, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]["kind"] == (
        "StatefulSet"
    )
    assert only(manifests, "Deployment")["metadata"]["name"] == "release-gatehouse-rag"


def test_the_service_monitor_scrapes_both_roles_as_job_gatehouse(
    rendered: dict[str, Manifests],
) -> None:
    manifests = rendered["everything"]
    monitor = only(manifests, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        m
        for m in manifests
        if m["kind"] == "Service" and selector.items() <= m["metadata"]["labels"].items()
    ]
    assert len(scraped) == 2
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    for service in scraped:
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        # The alert rules (deploy/prometheus/alerts.yml) expect job="gatehouse".
        assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "gatehouse"


def test_pods_run_as_the_image_user_on_a_read_only_root(rendered: dict[str, Manifests]) -> None:
    for manifest in rendered["everything"]:
        if manifest["kind"] not in ("Deployment", "StatefulSet", "Job"):
            continue
        spec = manifest["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001  # the Dockerfile's USER
        assert spec["automountServiceAccountToken"] is False
        for each in spec["containers"]:
            assert each["securityContext"]["readOnlyRootFilesystem"] is True
            writable = {m["mountPath"] for m in each["volumeMounts"] if not m.get("readOnly")}
            assert {"/tmp", "/var/lib/gatehouse"} <= writable


# Values whose content is free-form (a gatehouse config, Kubernetes objects):
# documented as a whole, not key by key.
_OPAQUE = {
    "config",
    "resources",
    "behavior",
    "annotations",
    "podAnnotations",
    "podLabels",
    "nodeSelector",
    "affinity",
    "labels",
    "podSecurityContext",
    "securityContext",
    "dataVolume",
}


def _value_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        role_image = key == "image" and prefix in ("gateway.", "rag.")
        if isinstance(value, dict) and value and key not in _OPAQUE and not role_image:
            yield from _value_keys(value, f"{path}.")
        else:
            yield path


def test_every_value_is_documented() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    docs = (DEPLOY.parent / "docs" / "deployment.md").read_text()
    missing = [key for key in _value_keys(values) if f"`{key}`" not in docs]
    assert not missing, f"values missing from docs/deployment.md's table: {missing}"
