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
    # and light jobs have a worker of their own, so a long training does not hold them up
    assert "-Q default " in services["jobs-worker"]["command"]


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


def _stages(dockerfile: Path) -> dict[str, str]:
    """Build stage name -> its instructions (continuation lines joined)."""
    text = dockerfile.read_text().replace("\\\n", " ")
    stages, name = {}, None
    for line in text.splitlines():
        if match := re.match(r"FROM \S+ AS (\w+)", line):
            name = match.group(1)
            stages[name] = line + "\n"
        elif name and line.strip() and not line.lstrip().startswith("#"):
            stages[name] += line + "\n"
    return stages


def test_the_web_image_carries_no_torch_and_gets_the_backbone_exported_at_build():
    import tomllib

    stages = _stages(DOCKER / "Dockerfile")
    web_chain = stages["base"] + stages["web"]  # web is built FROM base
    assert "FROM base AS web" in stages["web"] and "FROM base AS worker" in stages["worker"]
    assert "torch" not in web_chain and "[train]" not in web_chain
    assert "export-backbone efficientnet_lite0 --onnx-dir /app/backbones" in stages["worker"]
    assert "COPY --from=worker --chown=1000:1000 /app/backbones /app/backbones" in stages["web"]
    assert "PINHOLE_BACKBONE_DIR=/app/backbones" in stages["base"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith(("torch", "torchvision"))]
    assert {d.split(">")[0] for d in project["optional-dependencies"]["train"]} == {"torch", "torchvision"}
    services = compose()["services"]
    assert services["web"]["build"]["target"] == "web" and services["worker"]["build"]["target"] == "worker"


WITHOUT_TORCH = r'''
import importlib.abc, sys


class NoTorch(importlib.abc.MetaPathFinder):
    """The web image: torch and torchvision are not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "torchvision"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, NoTorch())
import classifier.graphs


def no_export(backbone, onnx_dir):
    raise AssertionError(f"the web process tried to export {backbone}: the image must bring it exported")


classifier.graphs.export_in_subprocess = no_export  # its child would have torch here, unlike the image
import django

django.setup()
from django.core.management import call_command
from django.test import Client
from django.test.utils import setup_test_environment

setup_test_environment()
call_command("migrate", verbosity=0)
call_command("collectstatic", "--no-input", verbosity=0)  # as the image build does
from django.contrib.auth import get_user_model
from webui.projects.models import Project

user = get_user_model().objects.create_user("wendy", password="pw")
project = Project.objects.create(name="No torch here", owner=user)
client = Client()
client.force_login(user)
pages = ["/projects/", f"/projects/{project.pk}/", f"/projects/{project.pk}/upload/",
         f"/projects/{project.pk}/label/", f"/projects/{project.pk}/settings/",
         f"/projects/{project.pk}/train/", f"/projects/{project.pk}/try/"]
for url in pages:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
with open(sys.argv[1], "rb") as photo:
    answer = client.post(f"/projects/{project.pk}/try/predict/", {"file": photo, "mode": "pretrained"},
                         HTTP_ACCEPT="application/json")
assert answer.status_code == 200, answer.content[:300]
print("TOP", answer.json()["top"][0]["label"])
assert "torch" not in sys.modules and "torchvision" not in sys.modules
'''


def test_the_web_tier_works_without_torch_installed(tmp_path):
    """Pages and a pretrained prediction in a process where torch cannot be imported, given the default
    backbone exported beforehand (as the web image's build does)."""
    from classifier.backbones import DEFAULT_BACKBONE
    from classifier.features import Extractor
    from tests.helpers import RED, png

    backbones = tmp_path / "backbones"
    Extractor(DEFAULT_BACKBONE, device="cpu", onnx_dir=backbones).load()  # the worker stage's export
    photo = tmp_path / "red.png"
    photo.write_bytes(png(RED, 1))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "PINHOLE_CACHE_URL", "PINHOLE_S3_BUCKET"}
    }
    env |= {
        "DJANGO_SETTINGS_MODULE": "webui.settings",
        "PINHOLE_DATA_DIR": str(tmp_path / "data"),
        "PINHOLE_BACKBONE_DIR": str(backbones),
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "CELERY_SKIP_CHECKS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, str(photo)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "TOP " in done.stdout
