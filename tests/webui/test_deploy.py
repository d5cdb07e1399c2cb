"""Migrations match the models and production settings pass Django's deployment checks."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _manage(tmp_path, *args, **env):
    environment = dict(os.environ, PINHOLE_DATA_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_it_has_no_missing_migrations(tmp_path):
    out = _manage(tmp_path, "makemigrations", "--check", "--dry-run")
    assert out.returncode == 0, out.stdout + out.stderr


def test_it_passes_the_deployment_checklist_with_production_settings(tmp_path):
    out = _manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_SECRET_KEY="x" * 20 + "production-secret-with-enough-entropy-0123456789",
        DJANGO_ALLOWED_HOSTS="pinhole.example.org",
        PINHOLE_HTTPS="true",
        PINHOLE_BEHIND_PROXY="true",
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_it_warns_when_deployed_without_https(tmp_path):
    out = _manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", DJANGO_SECRET_KEY="y" * 60)
    assert out.returncode != 0
    assert "security.W008" in out.stderr + out.stdout  # SECURE_SSL_REDIRECT


def test_the_web_process_runs_blas_on_the_requests_own_thread(tmp_path):
    """gunicorn's entry point limits BLAS before numpy loads; a Celery worker keeps every core."""
    probe = (
        "import {module}; import numpy, scipy.linalg; from threadpoolctl import threadpool_info; "
        "print(max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env.update(PINHOLE_DATA_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="webui.settings")

    def blas_threads(module: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", probe.format(module=module)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return int(out.stdout.split()[-1])

    assert blas_threads("webui.wsgi") == 1
    if (os.cpu_count() or 1) > 1:
        assert blas_threads("webui.celery") > 1
