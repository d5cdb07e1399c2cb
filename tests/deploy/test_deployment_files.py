"""docker/: the compose file is valid Compose, the Dockerfiles pass hadolint, and docker/.env.example
documents exactly the settings Pinhole reads. No Docker engine is needed (none runs in CI)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
HADOLINT = Path(sys.executable).with_name("hadolint")
# Read by the `ensure_admin` command (the web container's start), not by the settings.
READ_BY_COMMANDS = {"DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_PASSWORD"}
OURS = re.compile(r"^(PINHOLE_|DJANGO_|DATABASE_URL$|CELERY_BROKER_URL$)")
# Set by Pinhole for its own child processes and by the tests, never by an operator.
INTERNAL = re.compile(r"^(PINHOLE_TEST_|PINHOLE_EXPORT_LOCK_HELD$|DJANGO_SETTINGS_MODULE$)")


def compose() -> dict:
    # Compose resolves YAML anchors and merge keys (`<<: *app`) before it validates; so does this.
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_the_compose_file_is_valid_compose():
    from compose_spec import PyCompose

    resolved = compose()
    parsed = PyCompose.from_yaml(yaml.safe_dump(resolved))  # raises on anything outside the spec
    assert set(parsed.service_names()) >= {"web", "worker", "gpu-worker", "postgres", "redis", "minio"}
    for name in ("web", "worker", "gpu-worker"):
        service = resolved["services"][name]
        assert service["env_file"] == ".env", name
        assert (DOCKER / service["build"]["dockerfile"].removeprefix("docker/")).is_file(), name
        assert service["depends_on"]["postgres"] == {"condition": "service_healthy"}, name


def test_the_compose_commands_name_what_exists():
    services = compose()["services"]
    web, worker = services["web"]["command"], services["worker"]["command"]
    commands = REPO / "webui"
    for command in re.findall(r"manage\.py (\w+)", web):
        found = list(commands.rglob(f"management/commands/{command}.py"))
        assert command == "migrate" or found, f"no management command {command}"
    assert "gunicorn webui.wsgi" in web and (REPO / "webui" / "wsgi.py").is_file()
    assert worker.startswith("celery -A webui worker") and (REPO / "webui" / "celery.py").is_file()
    assert "-Q default,training" in worker  # a lone host's worker serves both queues


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.gpu"])
def test_the_dockerfiles_pass_hadolint(dockerfile):
    out = subprocess.run(
        [str(HADOLINT), "--config", str(DOCKER / "hadolint.yaml"), str(DOCKER / dockerfile)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def read_at_start(tmp_path, **env) -> set[str]:
    environment = {k: v for k, v in os.environ.items() if not OURS.match(k)}
    environment.update(DJANGO_SETTINGS_MODULE="webui.settings", PINHOLE_DATA_DIR=str(tmp_path), **env)
    out = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("env_probe.py"))],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return {name for name in json.loads(out.stdout.splitlines()[-1]) if OURS.match(name)}


def test_the_example_env_file_documents_every_setting_and_nothing_else(tmp_path):
    # With the options that switch more settings on (S3 storage, HTTPS), every variable gets read.
    read = read_at_start(tmp_path, PINHOLE_S3_BUCKET="b", PINHOLE_HTTPS="true", DJANGO_SECRET_KEY="k" * 50)
    read |= read_at_start(tmp_path)
    read = {name for name in read if not INTERNAL.match(name)}
    text = (DOCKER / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    assert read - documented == set(), "settings missing from docker/.env.example"
    assert documented - read - READ_BY_COMMANDS == set(), "docker/.env.example names what nothing reads"


def test_every_declared_dependency_is_pinned_within_its_range():
    import tomllib

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = [Requirement(r) for r in project["dependencies"]]
    declared += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not a pin (make lock writes name==version)"
            pins[canonicalize_name(name)] = version.strip()
    for requirement in declared:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in constraints.txt: run make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )
