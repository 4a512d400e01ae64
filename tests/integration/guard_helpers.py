"""Shared set-up for the guard's integration tests: a server config serving
``echo`` (chat) and ``vectors`` (embeddings) on the fake upstream, and the
guard decisions counted in ``/metrics``."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from .conftest import RunningServer, start_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER


def start_guarded(root: Path, upstream: FakeUpstream, guard: str) -> RunningServer:
    """A server (master key ``MASTER``, RAG answering with ``echo``) whose
    ``guard:`` section holds ``guard`` (YAML, indented two spaces)."""
    config = root / "gatehouse.yaml"
    config.write_text(
        f"""
local: {{chat: {{enabled: false}}, embeddings: {{enabled: false}}}}
aliases: {{}}
models:
  - name: echo
    deployments:
      - {{provider: openai_compat, model: up-echo, base_url: '{upstream.base_url}/v1'}}
  - name: vectors
    mode: embedding
    deployments:
      - {{provider: openai_compat, model: up-embed, base_url: '{upstream.base_url}/v1'}}
rag: {{answer_model: echo}}
guard:
  enabled: true
{guard}
"""
    )
    return start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)


def guard_decisions(server: RunningServer) -> dict[tuple[str, str], float]:
    """``gatehouse_guard_decisions_total`` by (rule, action)."""
    text = httpx.get(f"{server.base_url}/metrics", timeout=10).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "gatehouse_guard_decisions_total":
                counts[(sample.labels["rule"], sample.labels["action"])] = sample.value
    return counts
