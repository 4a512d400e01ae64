from pathlib import Path

import pytest

from gatehouse.core.config import DEFAULT_MAX_BODY_BYTES, load_settings
from gatehouse.core.errors import ConfigError


def test_defaults_need_no_file() -> None:
    settings = load_settings(environ={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.server.max_body_bytes == DEFAULT_MAX_BODY_BYTES
    assert settings.aliases == {"default": "local/smollm2"}


def test_file_then_environment_then_overrides(tmp_path: Path) -> None:
    config = tmp_path / "gatehouse.yaml"
    config.write_text("server:\n  port: 9000\n  host: 0.0.0.0\n")
    settings = load_settings(config, environ={"GATEHOUSE_SERVER__PORT": "9100"})
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 9100)
    settings = load_settings(
        config, environ={"GATEHOUSE_SERVER__PORT": "9100"}, overrides={"server.port": 9200}
    )
    assert settings.server.port == 9200


def test_unset_override_does_not_clobber(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"GATEHOUSE_DATA_DIR": str(tmp_path)}, overrides={"data_dir": None}
    )
    assert settings.data_dir == tmp_path


def test_unknown_key_is_named_with_its_source(tmp_path: Path) -> None:
    config = tmp_path / "gatehouse.yaml"
    config.write_text("server:\n  prot: 9000\n")
    with pytest.raises(ConfigError, match=r"server\.prot: unknown key \(from .*gatehouse\.yaml\)"):
        load_settings(config, environ={})


def test_the_removed_max_tokens_default_is_ignored_with_a_warning(tmp_path: Path) -> None:
    config = tmp_path / "gatehouse.yaml"
    config.write_text("local:\n  chat:\n    max_tokens_default: 128\n    threads: 2\n")
    with pytest.warns(FutureWarning, match=r"local\.chat\.max_tokens_default is ignored"):
        settings = load_settings(config, environ={})
    assert settings.local.chat.threads == 2
    assert not hasattr(settings.local.chat, "max_tokens_default")


def test_bad_value_from_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"server\.port: .*GATEHOUSE_SERVER__PORT"):
        load_settings(environ={"GATEHOUSE_SERVER__PORT": "eighty"})


def test_the_clients_variables_do_not_stop_the_server() -> None:
    # gatehouse.Client reads these; a shell that sets them still runs `gatehouse serve`.
    environ = {
        "GATEHOUSE_API_KEY": "gh-test-not-a-setting",
        "GATEHOUSE_BASE_URL": "http://127.0.0.1:8080",
        "GATEHOUSE_SERVER__PORT": "9001",
    }
    assert load_settings(environ=environ).server.port == 9001


def test_bad_log_level_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"server\.log_level"):
        load_settings(environ={"GATEHOUSE_SERVER__LOG_LEVEL": "loud"})


def test_missing_and_malformed_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings(tmp_path / "absent.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_settings(scalar, environ={})


def test_settings_survive_the_trip_to_worker_processes(tmp_path: Path) -> None:
    from gatehouse.core.config import Settings, settings_to_json

    config = tmp_path / "gatehouse.yaml"
    config.write_text(
        "models:\n  - name: g\n    deployments:\n"
        "      - {provider: openai_compat, model: m, base_url: 'http://x/v1', api_key: sk-secret}\n"
    )
    settings = load_settings(config, environ={"GATEHOUSE_DATA_DIR": str(tmp_path)})
    assert "sk-secret" not in settings.model_dump_json()  # printing never shows it
    restored = Settings.model_validate_json(settings_to_json(settings))
    assert restored == settings
    key = restored.models[0].deployments[0].api_key
    assert key is not None
    assert key.get_secret_value() == "sk-secret"
