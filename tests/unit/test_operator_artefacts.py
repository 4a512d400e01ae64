"""deploy/: the Grafana dashboard and the Prometheus alerts name only metrics the
server exports, and the rules pass promtool (syntax and their own unit tests)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gatehouse.core.config import Settings
from gatehouse.observability import Metrics
from gatehouse.server import create_app

from .governed import governed_app

DEPLOY = Path(__file__).parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "gatehouse.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts_test.yml"
HELLO = [{"role": "user", "content": "hello"}]
# Series Prometheus itself makes for every target.
PROMETHEUS_OWN = {"up"}

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, label
    names and Grafana variables left out)."""
    expr = _STRING.sub('""', expr)
    expr = _MATCHERS.sub("", expr)
    expr = _RANGE.sub("", expr)
    expr = _GROUPING.sub("", expr)
    names = set()
    for match in _NAME.finditer(expr):
        name, call = match.groups()
        if call is None and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def test_the_name_parser_reads_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, deployment) (rate(x_bucket{a="b", c=~"sum(y)"}'
        "[$__rate_interval]))) / scalar(sum(rate(y_total[5m]))) > bool 0.5 and on(team) z"
    )
    assert metric_names(expr) == {"x_bucket", "y_total", "z"}


def dashboard_queries() -> Iterator[tuple[str, str]]:
    def panels(items: list[dict[str, object]]) -> Iterator[dict[str, object]]:
        for item in items:
            yield item
            yield from panels(item.get("panels", []))  # type: ignore[arg-type]

    for panel in panels(json.loads(DASHBOARD.read_text())["panels"]):
        for target in panel.get("targets", []):  # type: ignore[attr-defined]
            yield str(panel["title"]), target["expr"]


def alert_queries() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def documented_names(text: str) -> set[str]:
    """Each family as docs/observability.md names it (counters with ``_total``;
    not the ``_created`` timestamps prometheus_client adds to each)."""
    return {
        family.name + ("_total" if family.type == "counter" else "")
        for family in text_string_to_metric_families(text)
        if not family.name.endswith("_created")
    }


def exported(text: str) -> set[str]:
    """Every series name a scrape offers, including the ones a family has no
    sample of yet (a histogram's _bucket, _sum and _count)."""
    names = set()
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("_sum", "_count", "_created", ""),
        "gauge": ("",),
    }
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


async def scrape_after_traffic(tmp_path: Path) -> list[str]:
    """/metrics of a governed app (per-key series on) after chat (streamed and
    not), embeddings, a cache hit, a refusal and a readiness check; and of the
    app as ``gatehouse serve`` builds it (which also wires its own access log)."""
    scrapes = []
    async for gov in governed_app(
        tmp_path / "governed", metrics=Metrics(per_key=True), cache={"enabled": True}
    ):
        sdk = gov.sdk(await gov.new_key(team="ops", limits={"rpm": 5}))
        await sdk.chat.completions.create(model="default", messages=HELLO)
        stream = await sdk.chat.completions.create(model="default", messages=HELLO, stream=True)
        async for _ in stream:
            pass
        await sdk.embeddings.create(model="test/embed", input="x")
        for _ in range(2):
            await sdk.chat.completions.create(model="default", messages=HELLO, temperature=0)
        with pytest.raises(openai.RateLimitError):
            await sdk.chat.completions.create(model="default", messages=HELLO)
        await gov.http.get("/readyz")
        scrapes.append((await gov.http.get("/metrics")).text)
    served = create_app(
        Settings.model_validate(
            {"data_dir": tmp_path / "served", "local": {"chat": {"enabled": False}}}
        )
    )
    transport = httpx.ASGITransport(app=served)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as http:
        await http.get("/readyz")
        scrapes.append((await http.get("/metrics")).text)
    return scrapes


async def test_every_dashboard_and_alert_query_names_an_exported_metric(tmp_path: Path) -> None:
    names = {name for text in await scrape_after_traffic(tmp_path) for name in exported(text)}
    queries = [*dashboard_queries(), *alert_queries()]
    assert len(queries) > 40
    unknown = {
        (where, name)
        for where, expr in queries
        for name in metric_names(expr) - names
        if not (name in PROMETHEUS_OWN and (where, expr) in set(alert_queries()))
    }
    assert not unknown, f"queries name metrics the server does not export: {sorted(unknown)}"


async def test_every_exported_metric_is_documented(tmp_path: Path) -> None:
    docs = (DEPLOY.parent / "docs" / "observability.md").read_text()
    scrapes = await scrape_after_traffic(tmp_path)
    names = {name for text in scrapes for name in documented_names(text)}
    assert "gatehouse_key_requests_total" in names  # the opt-in ones too
    missing = sorted(name for name in names if f"`{name}`" not in docs)
    assert not missing, f"docs/observability.md does not list {missing}"


def test_the_dashboard_covers_what_operators_watch() -> None:
    queried = {name for _, expr in dashboard_queries() for name in metric_names(expr)}
    for needed in (
        "gatehouse_requests_total",
        "gatehouse_request_duration_seconds_bucket",
        "gatehouse_time_to_first_token_seconds_bucket",
        "gatehouse_upstream_errors_total",
        "gatehouse_tokens_total",
        "gatehouse_cost_usd_total",
        "gatehouse_cache_lookups_total",
        "gatehouse_refusals_total",
        "gatehouse_deployment_breaker_state",
        "gatehouse_outbox_backlog",
    ):
        assert needed in queried
    titles = [title for title, _ in dashboard_queries()]
    assert any("p50, p95, p99" in title for title in titles)


def test_the_dashboard_is_importable_as_grafana_reads_it() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        refs = [target["refId"] for target in panel["targets"]]
        assert refs
        assert len(set(refs)) == len(refs)


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is missing: `make services` (scripts/ensure-test-services.sh) installs "
            "it from Debian's prometheus package"
        )
    return found


def test_promtool_accepts_the_rules_and_their_unit_tests() -> None:
    check = subprocess.run(
        [promtool(), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tested = subprocess.run(
        [promtool(), "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
