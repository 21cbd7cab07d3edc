"""Settings: defaults, then a TOML file, then ``CERANA_*`` environment variables.

Every setting is a field of `Settings`; ``docs/configuration.md`` documents
each one (a test keeps the two in step). The environment variable for a field
is ``CERANA_`` followed by its upper-cased name, e.g. ``CERANA_DATA_DIR``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "CERANA_"


class ConfigError(Exception):
    """The configuration file or an environment variable is invalid."""


@dataclass(frozen=True)
class Settings:
    """Every setting Cerana reads, with its default."""

    data_dir: Path = Path("cerana-data")
    database_url: str = ""
    queue_url: str = ""
    sqlite_synchronous: str = "NORMAL"
    host: str = "127.0.0.1"
    port: int = 9000
    organisation: str = "cerana"
    secret_key: str = field(default="", repr=False)
    admin_login: str = "admin"
    admin_password: str = field(default="", repr=False)
    # TheHive's well-known password for zipped samples; not a credential.
    attachment_password: str = "malware"  # noqa: S105
    max_attachment_size: int = 512 * 1024 * 1024
    max_body_size: int = 16 * 1024 * 1024
    session_inactivity: int = 3600
    session_warning: int = 300
    secure_cookies: bool = False
    auth_basic: bool = True
    auth_key: bool = True
    max_similar_cases: int = 100
    alert_upsert: bool = False
    metrics_required_to_close: bool = False
    stream_refresh: float = 60.0
    log_level: str = "INFO"
    workers: int = 2
    # Analysis engine (docs/analyzers.md).
    analyzer_paths: str = ""
    analyzer_key: str = field(default="", repr=False)
    analyzer_timeout: int = 30
    analyzer_cache: int = 10
    analyzer_concurrency: int = 4
    analyzer_output_limit: int = 8 * 1024 * 1024
    analyzer_attempts: int = 2
    cortex_embedded: bool = True
    # TOML tables: `[analyzers.<name>]` (analyzer configuration, as Cortex
    # names it) and `[cortex.<instance>]` (remote Cortex servers).
    analyzers: Mapping[str, Any] = field(
        default_factory=dict, repr=False, hash=False, compare=False
    )
    cortex: Mapping[str, Any] = field(
        default_factory=dict, repr=False, hash=False, compare=False
    )

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'cerana.db').resolve()}"

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    def __repr__(self) -> str:  # secrets must never reach a log line
        shown = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.repr
        }
        return f"Settings({shown})"


def load_settings(
    config_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Returns settings from defaults, ``config_file`` and ``environ``.

    Raises ConfigError naming the file, key or variable that is wrong.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = config_file or _path_from_env(environ)
    if path is not None:
        values.update(_read_toml(path))
    values.update(_read_environ(environ))
    settings = Settings(**values)
    _check_choices(settings)
    return _with_secret_key(settings)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _check_choices(settings: Settings) -> None:
    if settings.sqlite_synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError(
            f"sqlite_synchronous must be NORMAL, FULL or EXTRA, not {settings.sqlite_synchronous!r}"
        )
    if settings.log_level.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"log_level must be one of {', '.join(LOG_LEVELS)}, not {settings.log_level!r}"
        )


def _path_from_env(environ: Mapping[str, str]) -> Path | None:
    name = environ.get(ENV_PREFIX + "CONFIG")
    return Path(name) if name else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"configuration file {path} is not valid TOML: {exc}"
        ) from None
    section = document.get("cerana", document)
    known = _field_types()
    values: dict[str, Any] = {}
    for key in _TABLE_SETTINGS:  # tables may sit beside a [cerana] table
        if isinstance(document.get(key), dict):
            values[key] = document[key]
    for key, raw in section.items():
        if isinstance(raw, dict):
            if key in _TABLE_SETTINGS:
                values[key] = raw
            continue  # sub-sections belong to other parts (misp, ...)
        if key not in known:
            raise ConfigError(f"{path}: unknown setting '{key}'")
        values[key] = _coerce(key, raw, known[key], f"{path}: {key}")
    return values


def _read_environ(environ: Mapping[str, str]) -> dict[str, Any]:
    known = _field_types()
    values: dict[str, Any] = {}
    for key, kind in known.items():
        name = ENV_PREFIX + key.upper()
        if name in environ:
            values[key] = _coerce(key, environ[name], kind, name)
    return values


# Settings given as TOML tables (or JSON objects in the environment).
_TABLE_SETTINGS = ("analyzers", "cortex")


def _field_types() -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(Settings)}


def _coerce(key: str, raw: Any, kind: str, where: str) -> Any:
    try:
        if kind == "Path":
            return Path(str(raw))
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return _to_bool(raw)
        if kind.startswith("Mapping"):
            return _to_table(raw)
        return str(raw)
    except ValueError:
        raise ConfigError(f"{where}: expected {kind}, got {raw!r}") from None


def _to_table(raw: Any) -> dict[str, Any]:
    table = raw if isinstance(raw, dict) else json.loads(str(raw))
    if not isinstance(table, dict):
        raise ValueError("not a table")
    return table


def _to_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def _with_secret_key(settings: Settings) -> Settings:
    """Fills the session-signing key from the data folder, creating it once.

    A key kept in the data folder survives restarts, so sessions do too;
    several API processes must share it through the setting instead.
    """
    if settings.secret_key:
        return settings
    key_file = settings.data_dir / "secret.key"
    if key_file.exists():
        key = key_file.read_text(encoding="utf-8").strip()
    else:
        key = _create_key_file(key_file)
    return dataclasses.replace(settings, secret_key=key)


def _create_key_file(key_file: Path) -> str:
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first
        return key_file.read_text(encoding="utf-8").strip()
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key
