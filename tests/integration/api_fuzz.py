"""Fuzz a running gatehouse through its own OpenAPI document, with schemathesis.

Shared by the bounded test (tests/integration/test_api_fuzz.py) and the longer
run (bench/fuzz_api.py). Every operation in ``/openapi.json`` is called with
generated parameters and bodies, once as each caller (the master key and a
plain key of the default scopes), and once more as the plain key with path
parameters that name things that exist (a collection with a document, a prompt,
the plain key itself), so that the routes behind a 404 are reached too.

Each response must pass schemathesis's checks: not a 5xx, a declared status,
a declared content type, a body that matches its declared schema. A request
that does not answer within the timeout is a failure too (a hang).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream

MASTER = "sk-master-fuzz-0123456789abcdef"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Things the "known" pass names in paths; created before fuzzing starts.
COLLECTION = "fuzzed"
DOCUMENT = "doc-1"
PROMPT = "fuzzed-prompt"


@dataclass
class OperationResult:
    label: str  # "POST /v1/chat/completions"
    caller: str  # admin | plain | plain+known
    examples: int = 0
    failures: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)


@dataclass
class Target:
    server: RunningServer
    keys: dict[str, str]  # caller -> bearer token
    known: dict[str, str]  # path parameter -> a value that exists


def write_config(path: Path, upstream: FakeUpstream) -> Path:
    """Chat and embeddings on the fake upstream (model group ``up``); RAG embeds with
    the local MiniLM (the default collection model) and answers with ``up``."""
    path.write_text(
        f"""
local:
  chat: {{enabled: false}}
aliases: {{}}
rag: {{answer_model: up}}
models:
  - name: up
    deployments:
      - provider: openai_compat
        model: up-model
        base_url: '{upstream.base_url}/v1'
"""
    )
    return path


@contextmanager
def running_target() -> Iterator[Target]:
    """A fake upstream and a gatehouse process on free ports, with a plain key, a
    collection holding one document, and a prompt."""
    upstream = FakeUpstream().start()
    try:
        with tempfile.TemporaryDirectory(prefix="gatehouse-fuzz-") as tmp:
            root = Path(tmp)
            server = start_server(
                root / "data",
                config=write_config(root / "gatehouse.yaml", upstream),
                env={"GATEHOUSE_MASTER_KEY": MASTER},
            )
            try:
                yield _prepare(server)
            finally:
                stop_server(server)
    finally:
        upstream.stop()


def _prepare(server: RunningServer) -> Target:
    def call(key: str, method: str, path: str, body: object) -> dict[str, Any]:
        response = httpx.request(
            method,
            server.base_url + path,
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=120,
        )
        assert response.status_code in (200, 201), (path, response.text)
        data: dict[str, Any] = response.json()
        return data

    created = call(
        MASTER,
        "POST",
        "/admin/keys",
        {
            "name": "fuzz-plain",
            "scopes": ["chat", "embeddings", "rag:read", "rag:write", "prompts:read"],
        },
    )
    plain = created["key"]
    call(plain, "POST", "/v1/rag/collections", {"name": COLLECTION})
    call(
        plain,
        "POST",
        f"/v1/rag/collections/{COLLECTION}/documents",
        {"documents": [{"id": DOCUMENT, "text": "Gatehouse routes every model call."}]},
    )
    call(
        MASTER,
        "POST",
        "/v1/prompts",
        {"name": PROMPT, "template": "Say {{ word }}.", "variables": {"word": "string"}},
    )
    known = {
        "collection": COLLECTION,
        "document": DOCUMENT,
        "name": PROMPT,
        "version": "1",
        "id": created["id"],
        "model": "up",
    }
    return Target(server, {"admin": MASTER, "plain": plain}, known)


def fuzz(
    target: Target, *, examples: int, seed: int | None = None, timeout: float = 30.0
) -> list[OperationResult]:
    """Up to ``examples`` generated requests per operation and caller; the results.

    Operations that delete run last, so that the known pass reaches the
    collection, document and prompt before anything can remove them."""
    document = httpx.get(target.server.base_url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    results: list[OperationResult] = []
    with requests.Session() as session:
        for op in operations:
            label = f"{op.method.upper()} {op.path}"
            passes: list[tuple[str, str, dict[str, str]]] = [
                ("admin", target.keys["admin"], {}),
                ("plain", target.keys["plain"], {}),
            ]
            names = _path_parameters(op.path)
            if names and all(name in target.known for name in names):
                params = {name: target.known[name] for name in names}
                passes.append(("plain+known", target.keys["plain"], params))
            for caller, key, path_parameters in passes:
                result = OperationResult(label, caller)
                _run(op, result, session, target, key, path_parameters, examples, seed, timeout)
                results.append(result)
    return results


def _path_parameters(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _run(
    op: Any,
    result: OperationResult,
    session: requests.Session,
    target: Target,
    key: str,
    path_parameters: dict[str, str],
    examples: int,
    seed: int | None,
    timeout: float,
) -> None:
    headers = {"authorization": f"Bearer {key}"}
    strategy = op.as_strategy(path_parameters=path_parameters or None)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        result.examples += 1
        try:
            response = case.call(
                base_url=target.server.base_url, session=session, headers=headers, timeout=timeout
            )
        except requests.Timeout:
            result.failures.append(f"no answer within {timeout:g} s: {_describe(case)}")
            return
        result.statuses[response.status_code] = result.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:
            reason = str(exc).split("Reproduce with", 1)[0].strip()
            result.failures.append(f"{response.status_code} {_describe(case)}: {reason}")

    if seed is not None:
        check = hypothesis_seed(seed)(check)
    check()


def _describe(case: Any) -> str:
    return f"{case.method} {case.formatted_path} body={str(case.body)[:200]}"
