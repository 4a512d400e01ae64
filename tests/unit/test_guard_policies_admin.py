"""Guard policies of keys and teams through the admin API: stored in SQL,
applied to the next request, on every replica once it polls the revision."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from sqlalchemy.exc import OperationalError

from gatehouse.core.config import GuardConfig
from gatehouse.core.errors import ServiceUnavailableError
from gatehouse.core.types import ChatCompletion, ChatCompletionRequest
from gatehouse.gateway.guard_policies import GuardPolicies
from gatehouse.gateway.guard_stage import guard_stages
from gatehouse.gateway.pipeline import CallContext

from .fakes import RecordingChat
from .governed import Governed, governed_app

EMAIL = "ana.lopez@clinic.example"
GUARD = {"enabled": True, "entities": {"EMAIL": "allow"}}


@pytest.fixture
def chat() -> RecordingChat:
    return RecordingChat()


@pytest.fixture
async def gov(tmp_path: Path, chat: RecordingChat) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path, providers=[chat], guard=GUARD):
        yield governed


async def _send(gov: Governed, key: str) -> str | None:
    sdk = gov.sdk(key)
    reply = await sdk.chat.completions.create(
        model="test/rec-chat", messages=[{"role": "user", "content": f"mail {EMAIL}"}]
    )
    return reply.choices[0].message.content


async def test_a_keys_policy_applies_to_its_next_request(
    gov: Governed, chat: RecordingChat
) -> None:
    key = await gov.new_key(name="app", team="sales")
    key_id = (await gov.admin("GET", "/admin/keys")).json()["keys"][0]["id"]
    other = await gov.new_key(name="other", team="sales")
    assert (await gov.admin("GET", f"/admin/keys/{key_id}/guard")).status_code == 404

    put = await gov.admin("PUT", f"/admin/keys/{key_id}/guard", {"entities": {"email": "mask"}})
    assert put.status_code == 201, put.text
    assert put.json()["entities"] == {"EMAIL": "mask"}
    assert (await gov.admin("GET", f"/admin/keys/{key_id}/guard")).json()["entities"] == {
        "EMAIL": "mask"
    }
    # Masked on the way up, restored on the way back; another key is untouched.
    assert await _send(gov, key) == f"mail {EMAIL}"
    assert await _send(gov, other) == f"mail {EMAIL}"
    assert chat.seen == ["mail [EMAIL_1]", f"mail {EMAIL}"]

    replaced = await gov.admin(
        "PUT", f"/admin/keys/{key_id}/guard", {"entities": {"EMAIL": "redact"}}
    )
    assert replaced.status_code == 200
    assert await _send(gov, key) == "mail [EMAIL]"

    deleted = await gov.admin("DELETE", f"/admin/keys/{key_id}/guard")
    assert deleted.json() == {"kind": "key", "id": key_id, "deleted": True}
    assert await _send(gov, key) == f"mail {EMAIL}"
    assert (await gov.admin("DELETE", f"/admin/keys/{key_id}/guard")).status_code == 404

    targets = [e["target"] for e in (await gov.admin("GET", "/admin/audit")).json()["entries"]]
    assert targets.count(f"guard:key:{key_id}") == 3


async def test_a_teams_policy_and_the_key_over_it(gov: Governed, chat: RecordingChat) -> None:
    key = await gov.new_key(name="hr", team="hr")
    response = await gov.admin("PUT", "/admin/teams/hr/guard", {"entities": {"EMAIL": "block"}})
    assert response.status_code == 201
    with pytest.raises(openai.BadRequestError) as refused:
        await _send(gov, key)
    assert refused.value.code == "content_policy_violation"
    assert chat.seen == []
    key_id = (await gov.admin("GET", "/admin/keys?team=hr")).json()["keys"][0]["id"]
    await gov.admin("PUT", f"/admin/keys/{key_id}/guard", {"entities": {"EMAIL": "mask"}})
    assert await _send(gov, key) == f"mail {EMAIL}"
    assert chat.seen == ["mail [EMAIL_1]"]


async def test_bad_policies_and_unknown_keys_are_refused(gov: Governed) -> None:
    bad = await gov.admin("PUT", "/admin/teams/hr/guard", {"entities": {"EMAIL": "shred"}})
    assert bad.status_code == 400
    unknown_type = await gov.admin(
        "PUT", "/admin/teams/hr/guard", {"entities": {"passport": "mask"}}
    )
    assert unknown_type.status_code == 400
    missing = await gov.admin("PUT", "/admin/keys/0123456789abcdef/guard", {"entities": {}})
    assert missing.status_code == 404


async def test_callers_without_the_admin_scope_are_refused(gov: Governed) -> None:
    key = await gov.new_key(name="app", team="sales", scopes=["chat"])
    key_id = (await gov.admin("GET", "/admin/keys")).json()["keys"][0]["id"]
    headers = {"authorization": f"Bearer {key}"}
    for method, path in (
        ("GET", f"/admin/keys/{key_id}/guard"),
        ("PUT", f"/admin/keys/{key_id}/guard"),
        ("DELETE", "/admin/teams/sales/guard"),
        ("PUT", "/admin/teams/sales/guard"),
    ):
        response = await gov.http.request(
            method, path, json={"entities": {"EMAIL": "allow"}}, headers=headers
        )
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "permission_denied"
    assert (await gov.admin("GET", "/admin/teams/sales/guard")).status_code == 404


async def test_a_policy_set_on_one_replica_applies_on_another(tmp_path: Path) -> None:
    first_chat, second_chat = RecordingChat(), RecordingChat()
    async for first in governed_app(tmp_path, providers=[first_chat], guard=GUARD):
        async for second in governed_app(tmp_path, providers=[second_chat], guard=GUARD):
            key = await first.new_key(name="app", team="sales")
            assert await _send(second, key) == f"mail {EMAIL}"  # cached on the second replica
            put = await first.admin(
                "PUT", "/admin/teams/sales/guard", {"entities": {"EMAIL": "redact"}}
            )
            assert put.status_code == 201
            # One tick of the second replica's revision poll.
            await second.governance.directory.refresh()
            assert await _send(second, key) == "mail [EMAIL]"
            assert second_chat.seen == [f"mail {EMAIL}", "mail [EMAIL]"]


class _Unreachable:
    async def all(self) -> list[object]:
        raise OperationalError("SELECT", {}, ConnectionRefusedError())


class _Directory:
    generation = 1


async def test_unreadable_stored_policies_refuse_the_call_as_unavailable() -> None:
    policies = GuardPolicies(
        _Unreachable(),  # type: ignore[arg-type]
        _Directory(),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        clock=lambda: 0.0,
    )
    [stage] = guard_stages(GuardConfig(enabled=True), stored=policies)
    ctx = CallContext(
        request_id="req",
        endpoint="chat",
        request=ChatCompletionRequest.model_validate(
            {"model": "m", "messages": [{"role": "user", "content": f"mail {EMAIL}"}]}
        ),
        headers={},
    )

    async def upstream(_: CallContext) -> ChatCompletion:
        raise AssertionError("nothing may reach the upstream")

    with pytest.raises(ServiceUnavailableError):
        await stage(ctx, upstream)
