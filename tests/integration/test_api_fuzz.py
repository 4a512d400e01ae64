"""schemathesis against a real gatehouse process, through its own OpenAPI document.

Every route (OpenAI, Anthropic, admin, RAG, prompts, the dashboard) is called
with generated parameters and bodies as the master key and as a plain key
(api_fuzz.py): no 5xx, no hang, no status or body the document does not
declare. A bounded number of examples here; bench/fuzz_api.py runs more.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from .api_fuzz import Target, fuzz, running_target

pytestmark = pytest.mark.integration

EXAMPLES = 5


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    with running_target() as running:
        yield running


def test_the_openapi_document_is_valid_openapi_3_1(target: Target) -> None:
    document = httpx.get(target.server.base_url + "/openapi.json", timeout=30).json()
    errors = [str(e).splitlines()[0] for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []
    operations = [op for path in document["paths"].values() for op in path.values()]
    assert len({op["operationId"] for op in operations}) == len(operations)


def test_every_route_survives_generated_requests_as_each_caller(target: Target) -> None:
    results = fuzz(target, examples=EXAMPLES, seed=20)
    document = httpx.get(target.server.base_url + "/openapi.json", timeout=30).json()
    declared = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}
    assert {r.label for r in results} == declared
    assert {r.caller for r in results} == {"admin", "plain", "plain+known"}
    assert all(r.examples >= 1 for r in results)
    failures = [f"{r.label} as {r.caller}: {f}" for r in results for f in r.failures]
    assert failures == []
    # The plain key was refused the admin routes and reached the RAG ones.
    statuses = {(r.label, r.caller): r.statuses for r in results}
    assert set(statuses[("GET /admin/keys", "plain")]) == {403}
    assert 200 in statuses[("POST /v1/rag/collections/{collection}/search", "plain+known")]
    assert "Traceback" not in target.server.log.read_text()
