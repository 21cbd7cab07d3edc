"""Settings from defaults, a TOML file and the environment."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cerana.config import ConfigError, load_settings


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = tmp_path / "cerana.toml"
    config.write_text(f'[cerana]\nport = 9100\ndata_dir = "{tmp_path}"\n')

    settings = load_settings(config, {"CERANA_PORT": "9200"})

    assert settings.port == 9200
    assert settings.data_dir == tmp_path


def test_unknown_setting_in_file_names_it(tmp_path: Path) -> None:
    config = tmp_path / "cerana.toml"
    config.write_text("colour = 'blue'\n")

    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings(config, {"CERANA_DATA_DIR": str(tmp_path)})


def test_wrong_type_in_environment_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CERANA_PORT"):
        load_settings(None, {"CERANA_PORT": "ninety", "CERANA_DATA_DIR": str(tmp_path)})


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings(None, {"CERANA_DATA_DIR": str(tmp_path)})
    second = load_settings(None, {"CERANA_DATA_DIR": str(tmp_path)})

    assert first.secret_key and first.secret_key == second.secret_key
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600


def test_secrets_never_appear_in_the_text_form(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(
        None,
        {"CERANA_DATA_DIR": str(tmp_path), "CERANA_ADMIN_PASSWORD": "hunter2-secret"},
    )

    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s", settings)

    assert "hunter2-secret" not in caplog.text
    assert settings.secret_key not in caplog.text


def test_an_unknown_log_level_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError, match="log_level"):
        load_settings(None, {"CERANA_LOG_LEVEL": "chatty"})
