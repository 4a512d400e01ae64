"""The optional extras: a missing one is named with its install command, never a trace."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gatehouse.core import extras
from gatehouse.core.config import Settings
from gatehouse.core.errors import ConfigError, MissingExtraError, ModelNotFoundError
from gatehouse.core.extras import MODULES, has_extra, needs_extra, require_extra
from gatehouse.gateway import build_gateway
from gatehouse.providers.factory import ProviderFactory
from gatehouse.server import create_app

ROOT = Path(__file__).resolve().parents[2]
HINT = "pip install 'gatehouse[local]'"


@pytest.fixture
def without_local(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The 'local' extra as if not installed."""
    has_extra.cache_clear()
    monkeypatch.setitem(MODULES, "local", ("gatehouse_test_no_such_module",))
    yield
    has_extra.cache_clear()


@pytest.fixture
def without_rag(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    has_extra.cache_clear()
    monkeypatch.setitem(MODULES, "rag", ("gatehouse_test_no_such_module",))
    yield
    has_extra.cache_clear()


def test_a_missing_package_of_the_extra_names_the_extra() -> None:
    with (
        pytest.raises(MissingExtraError) as caught,
        needs_extra("rag", "Reading .pdf files"),
    ):
        raise ModuleNotFoundError("No module named 'pypdf.errors'", name="pypdf.errors")
    assert caught.value.message == "Reading .pdf files needs the 'rag' extra: " + (
        "pip install 'gatehouse[rag]'"
    )
    assert caught.value.http_status == 503
    assert caught.value.error_code == "missing_extra"


def test_other_import_errors_pass_through() -> None:
    with pytest.raises(ModuleNotFoundError), needs_extra("rag", "Keyword search"):
        raise ModuleNotFoundError("No module named 'gatehouse.nope'", name="gatehouse.nope")


def test_require_extra(without_rag: None) -> None:
    require_extra("local", "local/smollm2")  # installed in the test environment
    with pytest.raises(MissingExtraError, match=r"RAG needs the 'rag' extra"):
        require_extra("rag", "RAG")


def test_the_extras_modules_are_the_packages_pyproject_lists() -> None:
    """``MODULES`` and pyproject.toml's extras name the same packages."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    provides = importlib.metadata.packages_distributions()
    base = _names(project["dependencies"])
    for extra, modules in MODULES.items():
        wanted = _names(project["optional-dependencies"][extra])
        found = {
            module
            for module, distributions in provides.items()
            for distribution in distributions
            if _name(distribution) in wanted
        }
        assert set(modules) <= found, extra
        assert not wanted & base, f"{extra}: also a dependency of the gateway alone"


def _names(requirements: list[str]) -> set[str]:
    return {
        _name(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0]) for requirement in requirements
    }


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def test_the_gateway_imports_no_heavy_package() -> None:
    """Importing the server and the CLI loads nothing that an extra installs."""
    heavy = sorted({name for names in MODULES.values() for name in names})
    code = (
        "import sys, gatehouse.server.app, gatehouse.cli.main, gatehouse.rag\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_without_the_local_extra_the_local_models_are_left_out(without_local: None) -> None:
    settings = Settings(
        models=[
            {
                "name": "remote",
                "deployments": [
                    {"provider": "openai_compat", "model": "m", "base_url": "http://127.0.0.1:9/v1"}
                ],
            }
        ]
    )
    registry = build_gateway(settings, started_at=0).registry
    assert [entry.name for entry in registry.entries()] == ["remote"]
    for name in ("local/smollm2", "local/minilm", "default"):
        with pytest.raises(ModelNotFoundError) as caught:
            registry.get(name)
        assert HINT in caught.value.message
    with pytest.raises(ModelNotFoundError, match=r"^The model 'nope' does not exist\.$"):
        registry.get("nope")


def test_a_local_deployment_without_the_extra_is_a_config_error(without_local: None) -> None:
    with pytest.raises(ConfigError, match=r"local/smollm2 needs the 'local' extra"):
        ProviderFactory(Settings()).local("local/smollm2")


async def test_rag_routes_without_the_extra_answer_503(tmp_path: Path, without_rag: None) -> None:
    off = {"enabled": False}
    settings = Settings(data_dir=tmp_path, local={"chat": off, "embeddings": off})
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as client:
        response = await client.get("/v1/rag/collections")
    assert response.status_code == 503
    assert response.json()["error"]["message"] == (
        "RAG needs the 'rag' extra: pip install 'gatehouse[rag]'"
    )
    assert extras.has_extra("rag") is False
