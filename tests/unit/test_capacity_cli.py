from __future__ import annotations

import pytest

from gatehouse.cli.main import main


def test_capacity_from_given_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "--rate", "50", "--latency", "0.8"]) == 0
    assert "= 48 requests in flight" in capsys.readouterr().out


def test_capacity_rejects_bad_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "--rate", "0", "--latency", "1"]) == 2
    assert capsys.readouterr().err.strip() == "gatehouse: error: --rate must be positive"


def test_capacity_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capacity", "--rate", "5", "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot read http://127.0.0.1:9/admin/deployments" in capsys.readouterr().err
