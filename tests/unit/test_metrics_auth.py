"""``/metrics`` is public unless ``observability.metrics.require_auth``: then only an
``admin`` credential reads it (its series name teams and their spend)."""

from __future__ import annotations

from pathlib import Path

from gatehouse.observability import Metrics

from .governed import MASTER, governed_app


async def test_metrics_are_public_by_default(tmp_path: Path) -> None:
    async for gov in governed_app(tmp_path, metrics=Metrics()):
        response = await gov.http.get("/metrics")
        assert response.status_code == 200
        assert "gatehouse_" in response.text


async def test_require_auth_keeps_metrics_to_an_admin_credential(tmp_path: Path) -> None:
    settings = {"observability": {"metrics": {"require_auth": True}}}
    async for gov in governed_app(tmp_path, metrics=Metrics(), **settings):
        anonymous = await gov.http.get("/metrics")
        assert anonymous.status_code == 401
        assert anonymous.json()["error"]["type"]  # OpenAI-shaped, no series
        team_admin = await gov.new_key(team="red", scopes=["chat", "admin"])
        chat_only = await gov.new_key(scopes=["chat"])
        for key in (team_admin, chat_only):
            refused = await gov.http.get("/metrics", headers={"authorization": f"Bearer {key}"})
            assert refused.status_code == 403
            assert "gatehouse_" not in refused.text
        admin = await gov.new_key(scopes=["admin"])
        for key in (MASTER, admin):
            shown = await gov.http.get("/metrics", headers={"authorization": f"Bearer {key}"})
            assert shown.status_code == 200
            assert "gatehouse_" in shown.text
