"""Typed readers for configuration from the environment.

Every setting in webui/settings.py comes through these helpers so that a typo in a deployment
("ture", "10MB", "postgress://") stops the process at start-up with a message naming the variable,
instead of silently falling back to a default. The backend builders are pure functions of a mapping
so tests can check them without re-importing settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit


class ConfigError(ValueError):
    """A configuration value from the environment is malformed."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def env_str(name: str, default: str = "", environ: Mapping[str, str] | None = None) -> str:
    value = _raw(name, environ)
    return default if value is None else value


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean; use one of true/false, yes/no, on/off, 1/0")


def env_int(
    name: str,
    default: int,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} is below the minimum of {minimum}")
    if maximum is not None and number > maximum:
        raise ConfigError(f"{name}={number} is above the maximum of {maximum}")
    return number


def env_float(
    name: str,
    default: float,
    environ: Mapping[str, str] | None = None,
    *,
    minimum: float | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ConfigError(f"{name}={value!r} is not a finite number")
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}={number} is below the minimum of {minimum}")
    return number


def env_list(name: str, default: list[str], environ: Mapping[str, str] | None = None) -> list[str]:
    value = _raw(name, environ)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_path(name: str, default: Path, environ: Mapping[str, str] | None = None) -> Path:
    value = _raw(name, environ)
    path = default if value is None else Path(value).expanduser()
    return path.resolve()


# --- backends -------------------------------------------------------------------------------------


# The files of the data directory that hold secrets or everything: owner-only (0600). SQLite's -wal and
# -shm files copy their database's mode.
PRIVATE_FILES = ("pinhole.sqlite3", "broker.sqlite3", "secret_key")


def keep_private(data_dir: Path) -> None:
    """Make the data directory readable by its owner only (0700), and the database, broker and secret
    key files in it 0600. A directory or file someone else owns (a mounted volume) is left as it is."""
    for path, mode in ((data_dir, 0o700), *((data_dir / name, 0o600) for name in PRIVATE_FILES)):
        try:
            if path.exists() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
                path.chmod(mode)
        except OSError:
            continue


def database_config(url: str | None, data_dir: Path) -> dict:
    """Django DATABASES["default"] from a DATABASE_URL, or embedded SQLite in WAL mode.

    SQLite gets WAL (readers never block the writer), a busy timeout, and IMMEDIATE transactions:
    a web request and a worker writing at once then queue for the lock instead of one failing with
    "database is locked" when it upgrades a read transaction to a write.
    """
    if not url:
        return _sqlite(data_dir / "pinhole.sqlite3")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"postgres", "postgresql", "pgsql"}:
        options = dict(parse_qsl(parts.query))
        config = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # Reuse connections between requests; health checks drop ones the server closed
            # (a PostgreSQL restart) before a request sees them.
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
        if not config["NAME"]:
            raise ConfigError(f"DATABASE_URL={_redact(url)!r} names no database (…/DBNAME)")
        return config
    if scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path:
            raise ConfigError(
                "DATABASE_URL=sqlite:// needs a file path, e.g. sqlite:////srv/pinhole/db.sqlite3"
            )
        return _sqlite(Path(path))
    raise ConfigError(
        f"DATABASE_URL={_redact(url)!r} has an unsupported scheme {scheme!r}; use postgres:// or sqlite://"
    )


def _sqlite(path: Path) -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        # Keep each thread's connection between requests: opening one (and its PRAGMAs) cost as much
        # as the three queries of a prediction.
        "CONN_MAX_AGE": 60,
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
        },
    }


def broker_url(url: str | None, data_dir: Path) -> str:
    """Celery broker: the given URL, or kombu's SQLAlchemy transport on a SQLite file.

    The SQLite broker needs no server and works across processes on one machine, which is all
    `make run` needs; several hosts need Redis (or RabbitMQ).
    """
    if url:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in {
            "redis",
            "rediss",
            "amqp",
            "amqps",
            "pyamqp",
            "sqla+sqlite",
            "sqla+postgresql",
            "memory",
        }:
            raise ConfigError(
                f"CELERY_BROKER_URL has an unsupported scheme {scheme!r}; use redis:// or amqp://"
            )
        return url
    return f"sqla+sqlite:///{data_dir / 'broker.sqlite3'}"


def storages_config(environ: Mapping[str, str], media_root: Path) -> dict:
    """Django STORAGES: local files under the data directory, or S3 when a bucket is named."""
    static = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}
    bucket = env_str("PINHOLE_S3_BUCKET", "", environ)
    if not bucket:
        return {
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(media_root), "base_url": "/media-not-served/"},
            },
            "staticfiles": static,
        }
    options = {
        "bucket_name": bucket,
        "location": env_str("PINHOLE_S3_PREFIX", "", environ),
        "default_acl": None,  # objects stay private; the app serves them after an access check
        "querystring_auth": True,
        "file_overwrite": False,
    }
    optional = {
        "endpoint_url": "PINHOLE_S3_ENDPOINT_URL",
        "region_name": "PINHOLE_S3_REGION",
        "access_key": "PINHOLE_S3_ACCESS_KEY_ID",
        "secret_key": "PINHOLE_S3_SECRET_ACCESS_KEY",
    }
    for option, variable in optional.items():
        value = env_str(variable, "", environ)
        if value:
            options[option] = value
    return {
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
        "staticfiles": static,
    }


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
