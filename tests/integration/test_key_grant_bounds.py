"""Nobody gives a key more than its own: a non-master admin whose key is limited
to some models, or has rate limits or a budget, cannot create or change a key
with another model, every model, a looser limit or budget, or none (admin API
and dashboard form). The master key is not bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import RunningServer, start_server, stop_server
from .governance_helpers import call
from .ui_http import KEY, client, log_in, new_key

pytestmark = pytest.mark.integration

MASTER = "sk-master-grant-bounds-0123456789"
BOUNDED: dict[str, Any] = {
    "models": ["local/smollm2"],
    "limits": {"rpm": 10, "tpm": 1000},
    "budget": {"max_usd": 5, "period": "month"},
}
WITHIN: dict[str, Any] = {
    "models": ["local/smollm2"],
    "limits": {"rpm": 10, "tpm": 500, "max_parallel": 2},
    "budget": {"max_usd": 5, "period": "month"},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = start_server(
        tmp_path_factory.mktemp("grant-bounds") / "data", env={"GATEHOUSE_MASTER_KEY": MASTER}
    )
    yield running
    stop_server(running)


def _refused(response: httpx.Response, code: str, param: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param), error


LOOSER: list[tuple[dict[str, Any], str, str]] = [
    ({"models": None}, "model_not_held", "models"),
    ({"models": ["local/smollm2", "local/minilm"]}, "model_not_held", "models"),
    ({"limits": None}, "limit_not_held", "limits.rpm"),
    ({"limits": {"rpm": 11, "tpm": 1000}}, "limit_not_held", "limits.rpm"),
    ({"limits": {"rpm": 10}}, "limit_not_held", "limits.tpm"),
    ({"budget": None}, "budget_not_held", "budget"),
    ({"budget": {"max_usd": 6, "period": "month"}}, "budget_not_held", "budget"),
    ({"budget": {"max_usd": 1, "period": "day"}}, "budget_not_held", "budget"),
    ({"budget": {"max_usd": 5, "period": "month", "hard": False}}, "budget_not_held", "budget"),
]


def test_an_admin_key_gives_no_more_than_its_own_on_the_admin_api(server: RunningServer) -> None:
    operator = new_key(server, MASTER, name="ops", scopes=["admin", "chat"], **BOUNDED)
    target = new_key(server, MASTER, name="ops-target", scopes=["chat"], **WITHIN)
    target_id = target[3:19]
    for looser, code, param in LOOSER:
        created = call(
            server,
            operator,
            "POST",
            "/admin/keys",
            {"name": "ops-loose", "scopes": ["chat"], **WITHIN, **looser},
        )
        _refused(created, code, param)
        patched = call(server, operator, "PATCH", f"/admin/keys/{target_id}", looser)
        _refused(patched, code, param)
    # Left out of a new key is none at all: looser too.
    bare = call(server, operator, "POST", "/admin/keys", {"name": "ops-bare", "scopes": ["chat"]})
    _refused(bare, "model_not_held", "models")
    listed = call(server, MASTER, "GET", "/admin/keys").json()["keys"]
    assert not {"ops-loose", "ops-bare"} & {k["name"] for k in listed}
    record = call(server, MASTER, "GET", f"/admin/keys/{target_id}").json()
    assert (record["models"], record["limits"]["rpm"], record["budget"]["max_usd"]) == (
        ["local/smollm2"],
        10,
        5,
    )
    # As tight or tighter is allowed; a change that leaves them alone is too.
    made = call(
        server, operator, "POST", "/admin/keys", {"name": "ops-ok", "scopes": ["chat"], **WITHIN}
    )
    assert made.status_code == 201, made.text
    tighter = {"limits": {"rpm": 1, "tpm": 1}, "budget": {"max_usd": 0.5, "period": "month"}}
    assert call(server, operator, "PATCH", f"/admin/keys/{target_id}", tighter).is_success
    renamed = call(server, operator, "PATCH", f"/admin/keys/{target_id}", {"name": "renamed"})
    assert renamed.status_code == 200, renamed.text
    # A new secret for a key beyond them would hand it over: refused too.
    wide = new_key(server, MASTER, name="ops-wide", scopes=["chat"])
    rotated = call(server, operator, "POST", f"/admin/keys/{wide[3:19]}/rotate")
    _refused(rotated, "model_not_held", "models")
    assert call(server, operator, "POST", f"/admin/keys/{target_id}/rotate").is_success
    # The master key is bounded by nothing.
    assert call(server, MASTER, "PATCH", f"/admin/keys/{target_id}", {"models": None}).is_success
    new_key(server, MASTER, name="master-free", scopes=["chat"])


def test_a_team_admin_gives_no_more_than_its_own_on_the_dashboard(server: RunningServer) -> None:
    lead = new_key(
        server, MASTER, name="blue-lead", team="blue", scopes=["admin", "chat"], **BOUNDED
    )
    member = new_key(server, MASTER, name="blue-member", team="blue", scopes=["chat"], **WITHIN)
    member_id = member[3:19]
    wide = new_key(server, MASTER, name="blue-wide", team="blue", scopes=["chat"])
    within = {
        "models": "local/smollm2",
        "rpm": "10",
        "tpm": "1000",
        "budget_usd": "5",
        "budget_period": "month",
    }
    with client(server) as http:
        token = log_in(http, lead)
        for looser, message in [
            ({"models": ""}, "cannot give a key every model"),
            ({"models": "local/smollm2, local/minilm"}, "the model &#39;local/minilm&#39;"),
            ({"rpm": ""}, "rpm is 10, so it cannot give a key no limit"),
            ({"tpm": "2000"}, "tpm is 1000, so it cannot give a key 2000"),
            ({"budget_usd": "50"}, "budget is 5 USD a month"),
        ]:
            form = {"csrf_token": token, "name": "blue-loose", "scopes": ["chat"]}
            refused = http.post("/ui/keys", data={**form, **within, **looser})
            assert refused.status_code == 403, looser
            assert message in refused.text, refused.text
            assert not KEY.search(refused.text)
        limits = {k: v for k, v in {**within, "budget_usd": "50"}.items() if k != "models"}
        changed = http.post(f"/ui/keys/{member_id}/limits", data={"csrf_token": token, **limits})
        assert changed.status_code == 403
        rotated = http.post(f"/ui/keys/{wide[3:19]}/rotate", data={"csrf_token": token})
        assert rotated.status_code == 403
        assert "cannot give a key every model" in rotated.text
        assert not KEY.search(rotated.text)
        form = {"csrf_token": token, "name": "blue-ok", "scopes": ["chat"]}
        made = http.post("/ui/keys", data={**form, **within})
        assert made.status_code == 200, made.text
        assert KEY.search(made.text)
    keys = call(server, MASTER, "GET", "/admin/keys?team=blue").json()["keys"]
    assert {k["name"] for k in keys} == {"blue-lead", "blue-member", "blue-wide", "blue-ok"}
    member_record = next(k for k in keys if k["name"] == "blue-member")
    assert member_record["budget"]["max_usd"] == 5
