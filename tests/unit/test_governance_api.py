"""Keys, scopes, limits, budgets and the ledger, through the official openai SDK in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from gatehouse.catalog import prompt_tokens
from gatehouse.core.types import ChatCompletionRequest

from .governed import MASTER, Governed, governed_app

HELLO = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def gov(tmp_path: Path) -> AsyncIterator[Governed]:
    async for governed in governed_app(tmp_path):
        yield governed


async def test_requests_without_a_valid_credential_get_the_same_401(gov: Governed) -> None:
    bodies = []
    for key in ["", "gh-nothex_secretsecretsecretsecret", "gh-0123456789abcdef_" + "x" * 32, "x"]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        response = await gov.http.post(
            "/v1/chat/completions", json={"model": "default", "messages": HELLO}, headers=headers
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        bodies.append(response.json())
    assert all(set(body["error"]) == {"message", "type", "param", "code"} for body in bodies)
    assert {body["error"]["code"] for body in bodies} == {"invalid_api_key"}
    # Apart from the no-credential hint, nothing tells the failures apart.
    assert len({body["error"]["message"] for body in bodies[1:]}) == 1


async def test_a_created_key_is_shown_once_and_works(gov: Governed) -> None:
    created = await gov.admin("POST", "/admin/keys", {"name": "app", "team": "research"})
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("gh-")
    assert body["team"] == "research"
    assert "salt" not in body
    assert "digest" not in body
    listed = (await gov.admin("GET", "/admin/keys")).json()["keys"]
    assert [k["id"] for k in listed] == [body["id"]]
    assert not {"key", "salt", "digest"} & set(listed[0])
    reply = await gov.sdk(body["key"]).chat.completions.create(model="default", messages=HELLO)
    assert reply.choices[0].message.content == "hello"


async def test_scopes_and_allowed_models_are_enforced(gov: Governed) -> None:
    embed_only = await gov.new_key(scopes=["embeddings"])
    with pytest.raises(openai.PermissionDeniedError, match="'chat' scope"):
        await gov.sdk(embed_only).chat.completions.create(model="default", messages=HELLO)
    await gov.sdk(embed_only).embeddings.create(model="test/embed", input="x")
    narrow = await gov.new_key(models=["test/echo"])
    await gov.sdk(narrow).chat.completions.create(model="test/echo", messages=HELLO)
    with pytest.raises(openai.PermissionDeniedError, match="may not use the model 'default'"):
        await gov.sdk(narrow).chat.completions.create(model="default", messages=HELLO)


async def test_revoked_expired_and_rotated_keys(gov: Governed) -> None:
    key = await gov.new_key()
    key_id = key[3:19]
    await gov.sdk(key).chat.completions.create(model="default", messages=HELLO)
    assert (await gov.admin("DELETE", f"/admin/keys/{key_id}")).status_code == 200
    with pytest.raises(openai.AuthenticationError):
        await gov.sdk(key).chat.completions.create(model="default", messages=HELLO)

    expiring = await gov.new_key(expires_at="2026-06-01T00:00:00Z")  # the clock: 2026-05-28
    await gov.sdk(expiring).chat.completions.create(model="default", messages=HELLO)
    gov.clock.advance(7 * 86400)
    with pytest.raises(openai.AuthenticationError):
        await gov.sdk(expiring).chat.completions.create(model="default", messages=HELLO)

    old = await gov.new_key()
    rotated = await gov.admin("POST", f"/admin/keys/{old[3:19]}/rotate")
    new = rotated.json()["key"]
    assert new != old
    assert new[3:19] == old[3:19]
    with pytest.raises(openai.AuthenticationError):
        await gov.sdk(old).chat.completions.create(model="default", messages=HELLO)
    await gov.sdk(new).chat.completions.create(model="default", messages=HELLO)
    revoked_rotation = await gov.admin("POST", f"/admin/keys/{key_id}/rotate")
    assert revoked_rotation.status_code == 409


async def test_rpm_rejects_at_exactly_the_limit_with_headers(gov: Governed) -> None:
    key = await gov.new_key(limits={"rpm": 3})
    sdk = gov.sdk(key)
    for remaining in (2, 1, 0):
        raw = await sdk.chat.completions.with_raw_response.create(model="default", messages=HELLO)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-remaining-requests"] == str(remaining)
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(model="default", messages=HELLO)
    response = caught.value.response
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert response.headers["retry-after"] == "20"
    assert response.headers["x-ratelimit-remaining-requests"] == "0"
    gov.clock.advance(20)  # GCRA: one request's worth of capacity came back
    await sdk.chat.completions.create(model="default", messages=HELLO)
    with pytest.raises(openai.RateLimitError):
        await sdk.chat.completions.create(model="default", messages=HELLO)


async def test_tpm_reserves_the_estimate_and_settles_the_real_usage(gov: Governed) -> None:
    # Each call reserves prompt estimate (5) + max_tokens (10) = 15 and uses 2.
    key = await gov.new_key(limits={"tpm": 40})
    sdk = gov.sdk(key)
    for _ in range(10):
        await sdk.chat.completions.create(model="default", messages=HELLO, max_tokens=10)
    raw = await sdk.chat.completions.with_raw_response.create(
        model="default", messages=HELLO, max_tokens=10
    )
    assert raw.headers["x-ratelimit-limit-tokens"] == "40"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 40


def reserved(max_tokens: int) -> float:
    """What a hard budget reserves for one HELLO call: the prompt's bound at 1 USD a
    token and ``max_tokens`` at 2 USD (see governed.py). The call really costs 3 USD."""
    request = ChatCompletionRequest.model_validate({"model": "default", "messages": HELLO})
    return prompt_tokens(request, bound=True) * 1 + max_tokens * 2


async def test_a_hard_budget_admits_until_the_reservation_would_pass_it(gov: Governed) -> None:
    # Reservations fit while spent + reserved <= budget: after 3 calls (9 spent)
    # a 4th fits exactly, a 5th does not (12 spent).
    budget = 3 * 3 + reserved(2)
    key = await gov.new_key(budget={"max_usd": budget, "period": "day", "hard": True})
    sdk = gov.sdk(key)
    for _ in range(4):
        await sdk.chat.completions.create(model="default", messages=HELLO, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as caught:
        await sdk.chat.completions.create(model="default", messages=HELLO, max_tokens=2)
    error = caught.value.response.json()["error"]
    assert error["code"] == "budget_exceeded"
    assert error["type"] == "insufficient_quota"
    gov.clock.advance(86400)  # a new day, a new budget
    await sdk.chat.completions.create(model="default", messages=HELLO, max_tokens=2)


async def test_a_team_budget_binds_all_its_keys(gov: Governed) -> None:
    put = await gov.admin(
        "PUT", "/admin/teams/research", {"budget": {"max_usd": reserved(2) + 1, "period": "total"}}
    )
    assert put.status_code == 201
    first = gov.sdk(await gov.new_key(team="research"))
    second = gov.sdk(await gov.new_key(team="research"))
    await first.chat.completions.create(model="default", messages=HELLO, max_tokens=2)
    with pytest.raises(openai.RateLimitError, match="team:research"):
        await second.chat.completions.create(model="default", messages=HELLO, max_tokens=2)


async def test_a_soft_budget_only_warns(gov: Governed) -> None:
    key = await gov.new_key(budget={"max_usd": 1, "period": "month", "hard": False})
    sdk = gov.sdk(key)
    raw = await sdk.chat.completions.with_raw_response.create(model="default", messages=HELLO)
    assert "soft budget" in raw.headers["x-gatehouse-budget-warning"]
    assert gov.governance.limits.soft_alerts == 1


async def test_every_request_is_one_ledger_event_with_its_cost(gov: Governed) -> None:
    key = await gov.new_key(limits={"rpm": 2}, team="ops")
    sdk = gov.sdk(key)
    await sdk.chat.completions.create(model="default", messages=HELLO)
    gov.clock.advance(0.001)  # the ledger lists by time
    stream = await sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "a b c"}], stream=True
    )
    async for _ in stream:
        pass
    gov.clock.advance(0.001)
    with pytest.raises(openai.RateLimitError):
        await sdk.chat.completions.create(model="default", messages=HELLO)
    assert await gov.governance.outbox.count() == 3
    await gov.governance.shipper.drain()
    assert await gov.governance.outbox.count() == 0

    events = (await gov.admin("GET", "/admin/ledger?limit=10")).json()["events"]
    assert [e["status"] for e in events] == ["ok", "ok", "rate_limit_exceeded"]
    assert [e["stream"] for e in events] == [False, True, False]
    assert events[0]["cost_usd"] == 3.0
    assert events[0]["key_id"] == key[3:19]
    assert events[1]["completion_tokens"] > 0
    assert events[1]["ttft_ms"] is not None
    assert events[2]["http_status"] == 429
    assert events[2]["cost_usd"] == 0.0

    spend = (await gov.admin("GET", "/admin/spend?group_by=team")).json()["rows"]
    assert spend[0]["group"] == "ops"
    assert spend[0]["requests"] == 3
    # The refused (rate-limited) request is counted apart from the two served.
    assert (spend[0]["accepted"], spend[0]["refused"]) == (2, 1)
    assert spend[0]["cost_usd"] == events[0]["cost_usd"] + events[1]["cost_usd"]
    future = (await gov.admin("GET", "/admin/ledger?since=2099-01-01T00:00:00Z")).json()
    assert future["events"] == []


async def test_the_audit_log_records_who_did_what_without_secrets(gov: Governed) -> None:
    key = await gov.new_key(name="audited")
    await gov.admin("PATCH", f"/admin/keys/{key[3:19]}", {"limits": {"rpm": 5}})
    await gov.admin("DELETE", f"/admin/keys/{key[3:19]}")
    entries = (await gov.admin("GET", "/admin/audit")).json()["entries"]
    assert [e["action"] for e in entries] == ["revoke", "update", "create"]
    assert {e["actor"] for e in entries} == {"master"}
    assert entries[1]["before"]["limits"] is None
    assert entries[1]["after"]["limits"]["rpm"] == 5
    text = str(entries)
    assert key.split("_", 1)[1] not in text
    assert "digest" not in text
    assert "salt" not in text


async def test_admin_needs_the_admin_scope(gov: Governed) -> None:
    plain = await gov.new_key()
    denied = await gov.http.get("/admin/keys", headers={"authorization": f"Bearer {plain}"})
    assert denied.status_code == 403
    assert (await gov.http.get("/admin/keys")).status_code == 401
    admin_key = await gov.new_key(scopes=["admin"])
    allowed = await gov.http.get("/admin/keys", headers={"authorization": f"Bearer {admin_key}"})
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "param"),
    [
        ("POST", "/admin/keys", {"name": "x", "scopes": ["root"]}, "scopes"),
        ("POST", "/admin/keys", {"name": "x", "colour": "red"}, "colour"),
        ("POST", "/admin/keys", {"name": ""}, "name"),
        ("POST", "/admin/keys", {"name": "x", "expires_at": "tomorrow"}, "expires_at"),
        ("POST", "/admin/keys", {"name": "x", "limits": {"rpm": 0}}, "limits.rpm"),
        ("POST", "/admin/keys", {"name": "x", "budget": {"max_usd": -1}}, "budget.max_usd"),
        ("GET", "/admin/spend?group_by=colour", None, "group_by"),
        ("GET", "/admin/spend?since=yesterday", None, "since"),
        ("GET", "/admin/ledger?limit=0", None, "limit"),
    ],
)
async def test_bad_admin_input_is_a_400_naming_the_field(
    gov: Governed, method: str, path: str, body: object, param: str
) -> None:
    response = await gov.admin(method, path, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param


async def test_unknown_ids_are_404(gov: Governed) -> None:
    for method, path in [
        ("GET", "/admin/keys/0123456789abcdef"),
        ("DELETE", "/admin/keys/0123456789abcdef"),
        ("GET", "/admin/teams/nobody"),
    ]:
        response = await gov.admin(method, path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_responses_carry_security_headers(gov: Governed) -> None:
    response = await gov.http.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    huge = await gov.http.get("/healthz", headers={"x-filler": "a" * 40_000})
    assert huge.status_code == 431


async def test_master_key_may_call_models_and_is_metered(gov: Governed) -> None:
    await gov.sdk(MASTER).chat.completions.create(model="default", messages=HELLO)
    await gov.governance.shipper.drain()
    events = (await gov.admin("GET", "/admin/ledger")).json()["events"]
    assert events[0]["principal"] == "master"


async def test_the_deployments_view_is_admin_only(gov: Governed) -> None:
    assert (await gov.http.get("/admin/deployments")).status_code == 401
    assert (await gov.admin("GET", "/admin/deployments")).status_code == 200


async def test_the_anthropic_style_x_api_key_header_is_accepted(gov: Governed) -> None:
    key = await gov.new_key()
    response = await gov.http.post(
        "/v1/chat/completions",
        json={"model": "default", "messages": HELLO},
        headers={"x-api-key": key},
    )
    assert response.status_code == 200


async def test_teams_and_users_round_trip(gov: Governed) -> None:
    body = {"limits": {"rpm": 2}, "metadata": {"cost_centre": "42"}}
    assert (await gov.admin("PUT", "/admin/users/alice", body)).status_code == 201
    assert (await gov.admin("PUT", "/admin/users/alice", body)).status_code == 200
    listed = (await gov.admin("GET", "/admin/users")).json()["users"]
    assert [u["id"] for u in listed] == ["alice"]
    sdk = gov.sdk(await gov.new_key(user="alice"))
    for _ in range(2):
        await sdk.chat.completions.create(model="default", messages=HELLO)
    with pytest.raises(openai.RateLimitError, match="user:alice"):
        await sdk.chat.completions.create(model="default", messages=HELLO)
    assert (await gov.admin("DELETE", "/admin/users/alice")).status_code == 200
    await sdk.chat.completions.create(model="default", messages=HELLO)  # no user limit now
    bad = await gov.admin("PUT", "/admin/teams/x", {"budget": {"max_usd": 1, "period": "year"}})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "budget.period"


async def test_an_organisation_budget_binds_every_key_in_it(gov: Governed) -> None:
    budget = {"max_usd": reserved(2) + 1, "period": "week"}
    put = await gov.admin("PUT", "/admin/orgs/acme", {"budget": budget})
    assert put.status_code == 201
    first = gov.sdk(await gov.new_key(org="acme", team="a"))
    second = gov.sdk(await gov.new_key(org="acme", team="b"))
    await first.chat.completions.create(model="default", messages=HELLO, max_tokens=2)  # 3 USD
    with pytest.raises(openai.RateLimitError, match="org:acme"):  # 3 spent + reserved(3)
        await second.chat.completions.create(model="default", messages=HELLO, max_tokens=3)
    await gov.governance.shipper.drain()
    rows = (await gov.admin("GET", "/admin/spend?group_by=org")).json()["rows"]
    assert rows[0]["group"] == "acme"
    assert rows[0]["requests"] == 2
    assert rows[0]["cost_usd"] == 3.0
