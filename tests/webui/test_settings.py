"""Settings come from the environment through typed helpers that fail loudly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from webui.lib.env import (
    ConfigError,
    broker_url,
    database_config,
    env_bool,
    env_float,
    env_int,
    env_list,
    storages_config,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("helper", "value", "message"),
    [
        (lambda e: env_bool("X", False, e), "ture", "is not a boolean"),
        (lambda e: env_int("X", 1, e), "10MB", "is not a whole number"),
        (lambda e: env_int("X", 1, e, minimum=1), "0", "below the minimum"),
        (lambda e: env_float("X", 1.0, e), "fast", "is not a number"),
        (lambda e: env_float("X", 1.0, e), "nan", "not a finite number"),
    ],
)
def test_it_rejects_a_bad_value_naming_the_variable(helper, value, message):
    with pytest.raises(ConfigError, match=message) as info:
        helper({"X": value})
    assert "X=" in str(info.value)


def test_it_reads_typed_values_and_defaults():
    env = {"B": "yes", "I": " 42 ", "F": "2.5", "L": "a, b,,c", "EMPTY": "  "}
    assert env_bool("B", False, env) is True
    assert env_bool("EMPTY", True, env) is True
    assert env_int("I", 0, env) == 42
    assert env_float("F", 0.0, env) == 2.5
    assert env_list("L", [], env) == ["a", "b", "c"]
    assert env_list("MISSING", ["x"], env) == ["x"]


def test_it_defaults_to_sqlite_in_wal_mode(tmp_path):
    config = database_config(None, tmp_path)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "pinhole.sqlite3")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_it_switches_to_postgresql_with_database_url(tmp_path):
    config = database_config("postgres://pin:s%40cret@db.internal:6543/pinhole?sslmode=require", tmp_path)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["USER"], config["PASSWORD"]) == ("pinhole", "pin", "s@cret")
    assert (config["HOST"], config["PORT"]) == ("db.internal", "6543")
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_it_refuses_an_unknown_database_scheme_without_leaking_the_password(tmp_path):
    with pytest.raises(ConfigError, match="unsupported scheme") as info:
        database_config("mysql://u:hunter2@h/db", tmp_path)
    assert "hunter2" not in str(info.value)


def test_it_uses_a_serverless_broker_unless_one_is_named(tmp_path):
    assert broker_url(None, tmp_path) == f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    assert broker_url("redis://127.0.0.1:6379/0", tmp_path) == "redis://127.0.0.1:6379/0"
    with pytest.raises(ConfigError):
        broker_url("htp://oops", tmp_path)


def test_it_switches_file_storage_to_s3_when_a_bucket_is_named(tmp_path):
    local = storages_config({}, tmp_path)
    assert local["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert local["default"]["OPTIONS"]["location"] == str(tmp_path)
    s3 = storages_config(
        {
            "PINHOLE_S3_BUCKET": "models",
            "PINHOLE_S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            "PINHOLE_S3_ACCESS_KEY_ID": "key",
            "PINHOLE_S3_SECRET_ACCESS_KEY": "secret",
        },
        tmp_path,
    )
    assert s3["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    options = s3["default"]["OPTIONS"]
    assert options["bucket_name"] == "models"
    assert options["endpoint_url"] == "http://127.0.0.1:9000"
    assert options["default_acl"] is None


def _settings_in_subprocess(tmp_path, **env) -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "print(json.dumps({'db': settings.DATABASES['default']['ENGINE'],"
        "'broker': settings.CELERY_BROKER_URL, 'storage': settings.STORAGES['default']['BACKEND'],"
        "'data': str(settings.DATA_DIR)}))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    clean.update({"DJANGO_SETTINGS_MODULE": "webui.settings", "PINHOLE_DATA_DIR": str(tmp_path), **env})
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=clean, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_it_wires_the_environment_into_django_settings(tmp_path):
    embedded = _settings_in_subprocess(tmp_path)
    assert embedded == {
        "db": "django.db.backends.sqlite3",
        "broker": f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}",
        "storage": "django.core.files.storage.FileSystemStorage",
        "data": str(tmp_path),
    }
    assert (tmp_path / "secret_key").exists()
    servers = _settings_in_subprocess(
        tmp_path,
        DATABASE_URL="postgres://127.0.0.1:5432/test",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
        PINHOLE_S3_BUCKET="bucket",
    )
    assert servers["db"] == "django.db.backends.postgresql"
    assert servers["broker"] == "redis://127.0.0.1:6379/3"
    assert servers["storage"] == "storages.backends.s3.S3Storage"


def _with_env(tmp_path, command: list[str], timeout: int = 120, **env) -> subprocess.CompletedProcess:
    """Runs `command` in a fresh process whose only Pinhole variables are a data directory and `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PINHOLE_", "DJANGO_"))}
    clean.update({"PINHOLE_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(command, cwd=REPO, env=clean, capture_output=True, text=True, timeout=timeout)


def _check(tmp_path, **env):
    return _with_env(tmp_path, [sys.executable, "manage.py", "check"], **env)


def _import_settings(tmp_path, **env):
    return _with_env(
        tmp_path, [sys.executable, "-c", "import webui.settings as s; print(s.STATIC_ROOT)"], **env
    )


def test_it_stops_at_startup_on_a_bad_value(tmp_path):
    out = _check(tmp_path, PINHOLE_MAX_FILES_PER_REQUEST="lots")
    assert out.returncode != 0
    assert "PINHOLE_MAX_FILES_PER_REQUEST='lots' is not a whole number" in out.stderr


def test_it_refuses_a_soft_time_limit_that_is_not_below_the_hard_one(tmp_path):
    out = _check(tmp_path, PINHOLE_TASK_SOFT_TIME_LIMIT="600", PINHOLE_TASK_TIME_LIMIT="600")
    assert out.returncode != 0
    assert "PINHOLE_TASK_SOFT_TIME_LIMIT (600) must be below PINHOLE_TASK_TIME_LIMIT (600)" in out.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "PINHOLE_API_PREDICT_RATE",
            "20 per second",
            "PINHOLE_API_PREDICT_RATE='20 per second' is not a rate",
        ),
        ("PINHOLE_API_PREDICT_RATE", "20/fortnight", "PINHOLE_API_PREDICT_RATE='20/fortnight' is not a rate"),
        ("PINHOLE_API_PREDICT_RATE", "0/s", "PINHOLE_API_PREDICT_RATE='0/s' is not a rate"),
        ("PINHOLE_DEFAULT_BACKBONE", "vgg19", "PINHOLE_DEFAULT_BACKBONE='vgg19' is not a known backbone"),
        ("PINHOLE_ALLOW_DOWNLOADS", "ture", "PINHOLE_ALLOW_DOWNLOADS='ture' is not a boolean"),
    ],
)
def test_it_stops_at_import_on_a_bad_ml_or_api_value(tmp_path, variable, value, message):
    out = _import_settings(tmp_path, **{variable: value})
    assert out.returncode != 0
    assert message in out.stderr


def test_it_reads_rates_in_the_usual_spellings(monkeypatch):
    from webui import settings as module
    from webui.lib.rates import Rate

    expected = {
        "20/s": Rate(20, 1), "100/minute": Rate(100, 60), "600/min": Rate(600, 60),
        "1000/hour": Rate(1000, 3600), "10000/day": Rate(10000, 86400), "5/seconds": Rate(5, 1),
        "10/15min": Rate(10, 900),
    }  # fmt: skip
    for text, rate in expected.items():
        monkeypatch.setenv("PINHOLE_TEST_RATE", text)
        assert module._rate("PINHOLE_TEST_RATE", "1/s") == rate


def test_it_names_every_known_backbone_when_the_default_is_unknown(tmp_path):
    from classifier.backbones import BACKBONES

    out = _import_settings(tmp_path, PINHOLE_DEFAULT_BACKBONE="resnet-50")
    assert all(name in out.stderr for name in BACKBONES)


def test_it_reads_allow_downloads_strictly_in_the_ml_core(monkeypatch):
    from classifier.backbones import downloads_allowed
    from classifier.errors import BackboneUnavailable

    for value, expected in (
        ("", False),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        ("no", False),
        ("0", False),
    ):
        monkeypatch.setenv("PINHOLE_ALLOW_DOWNLOADS", value)
        assert downloads_allowed() is expected
    monkeypatch.delenv("PINHOLE_ALLOW_DOWNLOADS")
    assert downloads_allowed() is False
    monkeypatch.setenv("PINHOLE_ALLOW_DOWNLOADS", "ture")
    with pytest.raises(BackboneUnavailable, match="PINHOLE_ALLOW_DOWNLOADS='ture' is not a boolean"):
        downloads_allowed()


def test_it_imports_settings_without_torch(tmp_path):
    code = "import sys, webui.settings; assert 'torch' not in sys.modules, 'torch was imported'"
    out = _with_env(tmp_path, [sys.executable, "-c", code])
    assert out.returncode == 0, out.stderr


def test_it_keeps_static_files_where_pinhole_static_root_says(tmp_path):
    default = _import_settings(tmp_path)
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == str((tmp_path / "data" / "static").resolve())

    # The image build: a throwaway key and data directory, static files outside the /data volume.
    out = _with_env(
        tmp_path,
        [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
        timeout=300,
        DJANGO_SECRET_KEY="build-only-not-a-secret",
        PINHOLE_DATA_DIR=str(tmp_path / "build"),
        PINHOLE_STATIC_ROOT=str(tmp_path / "static"),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    assert not (tmp_path / "build" / "secret_key").exists()
    assert not (tmp_path / "build" / "static").exists()


def test_the_data_directory_and_database_are_readable_by_their_owner_only(tmp_path):
    from webui.lib.env import keep_private

    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    for name in ("pinhole.sqlite3", "broker.sqlite3", "secret_key"):
        (data / name).write_bytes(b"")
        (data / name).chmod(0o644)
    keep_private(data)
    assert data.stat().st_mode & 0o777 == 0o700
    for name in ("pinhole.sqlite3", "broker.sqlite3", "secret_key"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
