"""Stored prompt templates in a real server process, through the official openai SDK.

Templates are created over HTTP by one team's key and rendered server-side in
chat completions (``extra_body={"prompt": ...}``) and Responses
(``prompt=``) sent to the fake upstream; another team's key gets 404. The
template table runs one conformance suite on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gatehouse.client import AsyncClient, Client, NotFoundError, StoredPrompt
from gatehouse.store.database import Database
from gatehouse.store.prompt_templates import PromptTemplateStore, StoredTemplate

from .conftest import RunningServer, start_server, stop_server
from .fake_upstream import FakeUpstream
from .governance_helpers import MASTER, admin, call, create_key, write_config
from .sql_backends import OnPostgres, OnSQLite

TRIAGE = {
    "name": "triage",
    "template": "Classify this ticket as bug or feature: {{ ticket }}",
    "system": "You triage tickets for {{ product }}.",
    "variables": {"ticket": "string", "product": {"type": "string", "default": "gatehouse"}},
}


@pytest.fixture(scope="module")
def gatehouse(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("prompts")
    config = write_config(root / "gatehouse.yaml", upstream)
    server = start_server(root / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}, config=config)
    yield server
    stop_server(server)


@pytest.fixture
def fresh(upstream: FakeUpstream) -> FakeUpstream:
    upstream.reset()
    return upstream


def sdk(server: RunningServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{server.base_url}/v1", max_retries=0)


def team_key(server: RunningServer, team: str) -> str:
    return create_key(server, team=team, scopes=["chat", "prompts:read", "prompts:write"])


def test_chat_and_responses_render_a_stored_template(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    key = team_key(gatehouse, "tpl-red")
    created = call(gatehouse, key, "POST", "/v1/prompts", TRIAGE)
    assert created.status_code == 201, created.text
    client = sdk(gatehouse, key)

    raw = client.chat.completions.with_raw_response.create(
        model="up",
        messages=[{"role": "user", "content": "Answer with one word."}],
        extra_body={"prompt": {"id": "triage", "variables": {"ticket": "it crashes"}}},
    )
    assert raw.parse().choices[0].message.content == "echo: Answer with one word."
    assert fresh.requests[-1].body["messages"] == [
        {"role": "system", "content": "You triage tickets for gatehouse."},
        {"role": "user", "content": "Classify this ticket as bug or feature: it crashes"},
        {"role": "user", "content": "Answer with one word."},
    ]
    assert "prompt" not in fresh.requests[-1].body

    streamed = client.chat.completions.create(
        model="up",
        messages=[],
        stream=True,
        extra_body={"prompt": {"id": "triage", "version": 1, "variables": {"ticket": "slow"}}},
    )
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == "echo: Classify this ticket as bug or feature: slow"

    response = client.responses.create(
        model="up", prompt={"id": "triage", "version": "1", "variables": {"ticket": "typo"}}
    )
    assert response.output_text == "echo: Classify this ticket as bug or feature: typo"
    assert fresh.requests[-1].body["messages"][0] == {
        "role": "system",
        "content": "You triage tickets for gatehouse.",
    }

    request_id = raw.headers["x-request-id"]
    deadline = time.monotonic() + 30
    mine: list[dict[str, Any]] = []
    while not mine and time.monotonic() < deadline:
        events = admin(gatehouse, "GET", "/admin/ledger?limit=10000").json()["events"]
        mine = [e for e in events if e["request_id"] == request_id]
        time.sleep(0.1)
    assert [(e["tag"], e["team"], e["status"]) for e in mine] == [
        ("prompt:triage@1", "tpl-red", "ok")
    ]


def test_another_team_gets_404_and_a_missing_variable_is_named(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    red = team_key(gatehouse, "tpl-owner")
    body = {**TRIAGE, "name": "owned"}
    assert call(gatehouse, red, "POST", "/v1/prompts", body).status_code == 201
    blue_key = team_key(gatehouse, "tpl-other")
    blue = sdk(gatehouse, blue_key)
    with pytest.raises(openai.NotFoundError):
        blue.chat.completions.create(
            model="up",
            messages=[],
            extra_body={"prompt": {"id": "owned", "variables": {"ticket": "x"}}},
        )
    with pytest.raises(openai.NotFoundError):
        blue.responses.create(model="up", prompt={"id": "owned", "variables": {"ticket": "x"}})
    assert call(gatehouse, blue_key, "GET", "/v1/prompts/owned").status_code == 404
    assert call(gatehouse, blue_key, "DELETE", "/v1/prompts/owned").status_code == 404
    with pytest.raises(openai.BadRequestError) as missing:
        sdk(gatehouse, red).chat.completions.create(
            model="up", messages=[], extra_body={"prompt": {"id": "owned"}}
        )
    assert isinstance(missing.value.body, dict)
    assert missing.value.body["param"] == "prompt.variables"
    assert "missing variable 'ticket'" in missing.value.body["message"]
    assert fresh.requests == []
    # The owner's template is still there, and administrators see it.
    assert admin(gatehouse, "GET", "/v1/prompts/owned").json()["owner"] == {
        "kind": "team",
        "id": "tpl-owner",
    }


def test_the_client_manages_and_uses_templates(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    key = team_key(gatehouse, "tpl-client")
    with Client(base_url=gatehouse.base_url, api_key=key) as client:
        created = client.create_prompt(
            "greeting", "Greet {{ name }}.", variables={"name": "string"}, description="hi"
        )
        assert isinstance(created, StoredPrompt)
        assert (created.id, created.version, created.owner) == (
            "greeting",
            1,
            {"kind": "team", "id": "tpl-client"},
        )
        assert (
            client.create_prompt(
                "greeting", "Greet {{ name }}!", variables={"name": "string"}
            ).version
            == 2
        )
        assert client.prompt("greeting", 1).template == "Greet {{ name }}."
        assert "greeting" in [p.id for p in client.prompts()]
        answer = client.chat(
            [], model="up", prompt={"id": "greeting", "variables": {"name": "Ada"}}
        )
        assert answer.choices[0].message.content == "echo: Greet Ada!"
        assert client.delete_prompt("greeting", 2) == [2]
        assert client.prompt("greeting").version == 1
        assert client.delete_prompt("greeting") == [1]
        with pytest.raises(NotFoundError):
            client.prompt("greeting")


async def test_the_async_client_renders_a_template(
    gatehouse: RunningServer, fresh: FakeUpstream
) -> None:
    key = team_key(gatehouse, "tpl-async")
    async with AsyncClient(base_url=gatehouse.base_url, api_key=key) as client:
        await client.create_prompt("async-greeting", "Hello {{ who }}", variables={"who": "string"})
        answer = await client.chat(
            "and goodbye", model="up", prompt={"id": "async-greeting", "variables": {"who": "Bo"}}
        )
        assert answer.choices[0].message.content == "echo: and goodbye"
        assert fresh.requests[-1].body["messages"] == [
            {"role": "user", "content": "Hello Bo"},
            {"role": "user", "content": "and goodbye"},
        ]
        assert [p.id for p in await client.prompts()] == ["async-greeting"]


def record(name: str, version: int, **fields: Any) -> StoredTemplate:
    values: dict[str, Any] = {
        "name": name,
        "version": version,
        "template": "Héllo {{ who }} ✓",
        "system": None,
        "variables": {"who": {"type": "string", "required": True, "default": None}},
        "description": "",
        "owner_kind": "team",
        "owner_id": "red",
        "created_at": 1_780_000_000.0,
        "created_by": "key:abc",
        **fields,
    }
    return StoredTemplate(**values)


class PromptTemplateStoreConformance:
    async def test_versions_round_trip_and_a_taken_number_is_refused(
        self, database: Database
    ) -> None:
        store = PromptTemplateStore(database)
        first, second = record("t", 1), record("t", 2, system="Be brief.")
        assert await store.insert(first)
        assert await store.insert(second)
        assert not await store.insert(record("t", 2, template="other"))
        assert await store.history("t") == [first, second]
        assert await store.get("t") == second
        assert await store.get("t", 1) == first
        assert await store.get("t", 3) is None
        assert await store.get("missing") is None

    async def test_concurrent_writers_of_one_number_store_it_once(
        self, database: Database, replica: Database
    ) -> None:
        stores = [PromptTemplateStore(database), PromptTemplateStore(replica)]
        results = await asyncio.gather(
            *(
                s.insert(record("race", 1, template=f"{{{{ who }}}} {i}"))
                for i, s in enumerate(stores)
            )
        )
        assert sorted(results) == [False, True]
        assert len(await stores[0].history("race")) == 1

    async def test_delete_leaves_a_tombstone(self, database: Database) -> None:
        store = PromptTemplateStore(database)
        one, two = record("d", 1), record("d", 2)
        await store.insert(one)
        await store.insert(two)
        assert await store.delete([two], actor="key:abc", at=1_780_000_100.0) == [two]
        assert await store.delete([two], actor="key:abc", at=1_780_000_200.0) == []
        assert await store.get("d") == one
        tombstone = await store.get("d", 2)
        assert tombstone is not None
        assert (tombstone.deleted_at, tombstone.template, tombstone.owner_id) == (
            1_780_000_100.0,
            "",
            "red",
        )
        assert [(r.name, r.version) for r in await store.live()] == [("d", 1)]


class TestSQLiteStore(OnSQLite, PromptTemplateStoreConformance):
    pass


class TestPostgresStore(OnPostgres, PromptTemplateStoreConformance):
    pass
