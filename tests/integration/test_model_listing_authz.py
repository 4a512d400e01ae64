"""``GET /v1/models`` and ``/v1/models/{id}`` show a key only the models it may call.

Over real HTTP, with keys of two teams limited to some models (``models`` of
``POST /admin/keys``), a key without a list and the master key. A model a key
may not call is absent from its listing, and asking for it is the same 404 as
for a model that does not exist; what a key lists is exactly what the chat
route lets it call, aliases included (both check the name the client sends).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, call, create_key

EVERY = ["alpha-model", "beta-model", "fast", "shared"]


@pytest.fixture(scope="module")
def gatehouse(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("model-listing")
    url = f"{upstream.base_url}/v1"
    groups = "\n".join(
        f"  - name: {name}\n    deployments: [{{provider: openai_compat, model: up-{name}, "
        f"base_url: '{url}'}}]"
        for name in ("alpha-model", "beta-model", "shared")
    )
    config = root / "gatehouse.yaml"
    config.write_text(
        "local:\n  chat: {enabled: false}\n  embeddings: {enabled: false}\n"
        f"aliases: {{fast: alpha-model}}\nmodels:\n{groups}\n"
    )
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def keys(gatehouse: RunningServer) -> dict[str, str]:
    return {
        "alpha": create_key(gatehouse, team="alpha", models=["alpha-model", "fast", "shared"]),
        "beta": create_key(gatehouse, team="beta", models=["beta-model"]),
        "nothing": create_key(gatehouse, team="beta", models=[]),
        "unrestricted": create_key(gatehouse, team="gamma"),
        "master": MASTER,
    }


def listed(server: RunningServer, key: str) -> list[str]:
    response = call(server, key, "GET", "/v1/models")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    return sorted(card["id"] for card in body["data"])


def test_each_key_lists_only_the_models_it_may_call(
    gatehouse: RunningServer, keys: dict[str, str]
) -> None:
    assert listed(gatehouse, keys["alpha"]) == ["alpha-model", "fast", "shared"]
    assert listed(gatehouse, keys["beta"]) == ["beta-model"]
    assert listed(gatehouse, keys["nothing"]) == []
    assert listed(gatehouse, keys["unrestricted"]) == EVERY
    assert listed(gatehouse, keys["master"]) == EVERY
    # The official SDK sees the same list.
    sdk = openai.OpenAI(base_url=f"{gatehouse.base_url}/v1", api_key=keys["beta"], max_retries=0)
    assert [model.id for model in sdk.models.list()] == ["beta-model"]


def test_another_teams_model_is_the_same_404_as_an_absent_one(
    gatehouse: RunningServer, keys: dict[str, str]
) -> None:
    for key, hidden, own in (
        (keys["alpha"], "beta-model", "fast"),
        (keys["beta"], "shared", "beta-model"),
    ):
        refused = call(gatehouse, key, "GET", f"/v1/models/{hidden}")
        absent = call(gatehouse, key, "GET", "/v1/models/no-such-model")
        assert refused.status_code == absent.status_code == 404
        refused_error, absent_error = refused.json()["error"], absent.json()["error"]
        assert refused_error["message"] == absent_error["message"].replace("no-such-model", hidden)
        assert {**refused_error, "message": ""} == {**absent_error, "message": ""}
        assert refused_error["code"] == "model_not_found"
        seen = call(gatehouse, key, "GET", f"/v1/models/{own}")
        assert seen.status_code == 200, seen.text
        assert seen.json()["id"] == own
    # Unrestricted callers see each one.
    for key in (keys["unrestricted"], keys["master"]):
        for name in EVERY:
            assert call(gatehouse, key, "GET", f"/v1/models/{name}").json()["id"] == name
    # Without a credential, nothing at all.
    assert httpx.get(f"{gatehouse.base_url}/v1/models", timeout=10).status_code == 401
    assert httpx.get(f"{gatehouse.base_url}/v1/models/shared", timeout=10).status_code == 401


def test_what_a_key_lists_is_what_it_may_call(
    gatehouse: RunningServer, keys: dict[str, str], upstream: FakeUpstream
) -> None:
    upstream.reset()
    for who in ("alpha", "beta", "unrestricted"):
        shown = listed(gatehouse, keys[who])
        for name in EVERY:
            answer = call(
                gatehouse,
                keys[who],
                "POST",
                "/v1/chat/completions",
                {"model": name, "messages": [{"role": "user", "content": "hi"}]},
            )
            assert answer.status_code == (200 if name in shown else 403), (who, name, answer.text)
