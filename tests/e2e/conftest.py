"""A live Pinhole (runserver + a real Celery worker) and a headless Chromium for the browser flows.

The app runs exactly as `make run` does on one machine: embedded defaults (SQLite database, files under
a temporary PINHOLE_DATA_DIR, the SQLite Celery broker), whatever DATABASE_URL / CELERY_BROKER_URL say
in the environment of the test run. DEBUG stays off so the pages are the ones people get: the real
404 / 403 answers, and static files through whitenoise's manifest storage (collected into the data
directory first), which also catches a template naming an asset that does not exist.

Chromium is Debian's /usr/bin/chromium (Playwright's own browser download is blocked here;
PINHOLE_CHROMIUM names another binary). Without it, or without ../shared/datasets, the tests skip with a
message; with PINHOLE_REQUIRE_SERVICES=1 (CI) they fail instead, because in CI a skip is a failure.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared" / "datasets"
HYMENOPTERA = DATASETS / "hymenoptera"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM = Path(os.environ.get("PINHOLE_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_SERVICES = os.environ.get("PINHOLE_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}

# username -> password; roles are given per project by the flows (owner, viewer, stranger).
USERS = {"alice": "alice-pw-4e2e", "victor": "victor-pw-4e2e", "sam": "sam-pw-4e2e"}
VIEWPORT = {"width": 1366, "height": 900}
START_TIMEOUT_S = 90


def missing(reason: str):
    """Skip for something this machine lacks, except in CI where that is a failure."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PINHOLE_REQUIRE_SERVICES is set)")
    pytest.skip(reason)


# --- the live app -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class LiveApp:
    url: str
    env: dict
    logs: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def manage(self, *args: str, timeout: float = 120) -> str:
        """Run `manage.py ARGS` against the live app's database and files; its stdout."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "-c", code)

    def start(self, name: str, command: list[str]) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - kept open for the process's life
        # A session of its own, so the worker's pool children can be stopped with it (by group id).
        self.processes[name] = subprocess.Popen(
            command, cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(
                    f"the {name} process exited with code {process.returncode}:\n{self.log_tail(name)}"
                )

    def log_tail(self, name: str, lines: int = 60) -> str:
        return _tail(self.logs / f"{name}.log", lines)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=10)
            # Pool children that outlived their parent's warm shutdown.
            _signal_group(process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _wait_healthy(app: LiveApp) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        app.check_alive()
        try:
            with urllib.request.urlopen(app.url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"the app did not answer /healthz in {START_TIMEOUT_S} s:\n{app.log_tail('web')}")


def _wait_worker_ready(app: LiveApp) -> None:
    # A run queued before the worker is up simply waits; this catches a worker that cannot start.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        app.check_alive()
        if b"ready." in (app.logs / "worker.log").read_bytes():
            return
        time.sleep(0.3)
    raise AssertionError(f"the worker was not ready in {START_TIMEOUT_S} s:\n{app.log_tail('worker')}")


@pytest.fixture(scope="session")
def live_app(tmp_path_factory):
    """The app on a free loopback port, with a worker, users alice / victor / sam; stopped at the end."""
    root = tmp_path_factory.mktemp("e2e-app")
    logs = root / "logs"
    logs.mkdir()
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        # The embedded defaults, whatever the CI run around us points at.
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "PINHOLE_CACHE_URL", "PINHOLE_S3_BUCKET"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "webui.settings",
            "PINHOLE_DATA_DIR": str(root / "data"),
            "PINHOLE_MODEL_CACHE": str(root / "model-cache"),
            "DJANGO_DEBUG": "false",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "PINHOLE_TASKS_EAGER": "false",
            # Every flow comes from 127.0.0.1; the default limits suit real visitors, not a test run.
            "PINHOLE_SHARE_RATE_PER_MINUTE": "1000",
            "PINHOLE_SHARE_LOOKUP_FAILURES_PER_MINUTE": "1000",
            "PINHOLE_TRY_RATE_PER_MINUTE": "1000",
            "PINHOLE_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "CELERY_SKIP_CHECKS": "1",
        }
    )
    (root / "data").mkdir()
    app = LiveApp(url=f"http://127.0.0.1:{port}", env=env, logs=logs)
    try:
        app.manage("migrate", "--no-input", "-v", "0")
        app.manage("collectstatic", "--no-input", "-v", "0")
        users = ", ".join(f"({name!r}, {password!r})" for name, password in USERS.items())
        app.shell(
            "from django.contrib.auth import get_user_model\n"
            f"for name, password in [{users}]:\n"
            "    user = get_user_model().objects.create_user(username=name, password=password)\n"
        )
        app.start("web", [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"])
        app.start(
            "worker",
            # INFO, not WARNING: its "ready." line is how we know it consumes (the SQLite broker has no
            # remote control to ping), and the log is shown when a test fails.
            [sys.executable, "-m", "celery", "-A", "webui", "worker", "-Q", "default,training", "-c", "1"]
            + ["--loglevel", "INFO"],
        )
        _wait_healthy(app)
        _wait_worker_ready(app)
        yield app
    finally:
        app.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, put the end of the web and worker logs into the report."""
    outcome = yield
    report = outcome.get_result()
    app = item.funcargs.get("live_app") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(app, LiveApp):
        for name in app.processes:
            report.sections.append((f"{name} log (tail)", app.log_tail(name)))


# --- data -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def hymenoptera() -> Path:
    if not (HYMENOPTERA / "train" / "ants").is_dir():
        missing(f"the hymenoptera photos are not at {HYMENOPTERA} (they live in ../shared/datasets)")
    return HYMENOPTERA


# --- the browser ------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def chromium() -> Path:
    """Checked before anything starts, so a machine without a browser skips at once."""
    if not CHROMIUM.exists():
        missing(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set PINHOLE_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("Playwright for Python is not installed: pip install -e '.[dev]'")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(chromium),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                # A camera that shows a test pattern, allowed without asking (the label page's capture).
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
            ],  # fmt: skip
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_context(browser, live_app):
    """new_context(**options) -> a fresh browser context (no cookies) on the live app; closed after.

    Uncaught JavaScript errors, static files that fail to load and anything the content security
    policy blocked fail the test at teardown.
    """
    contexts = []
    problems: list[str] = []

    def watch(page) -> None:
        page.on("pageerror", lambda error: problems.append(f"JavaScript error on {page.url}: {error}"))
        page.on(
            "console",
            lambda m: (
                problems.append(f"blocked on {page.url}: {m.text}")
                if m.type == "error" and "Content Security Policy" in m.text
                else None
            ),
        )
        page.on(
            "response",
            lambda r: (
                problems.append(f"{r.status} for {r.url}")
                if "/static/" in r.url and r.status >= 400
                else None
            ),
        )

    def make(**options):
        options.setdefault("viewport", VIEWPORT)
        context = browser.new_context(base_url=live_app.url, **options)
        context.set_default_timeout(15_000)
        context.on("page", watch)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """The screenshot folder (a CI artifact), emptied of an earlier run's pictures."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return SCREENSHOTS


@pytest.fixture
def shot(request, screenshots):
    """shot(page, step): a full-page screenshot at tests/e2e/screenshots/<test>-<step>.png."""
    test = request.node.name.removeprefix("test_")

    def take(page, step: str) -> Path:
        path = screenshots / f"{test}-{step}.png"
        # From the top: a full-page capture of a scrolled page draws the sticky top bar mid-page.
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture(scope="session")
def users() -> dict[str, str]:
    """username -> password of the people the live app knows."""
    return dict(USERS)


@pytest.fixture
def sign_in(new_context):
    """sign_in(username) -> a page signed in through the login form, on the project list."""

    def go(username: str, **context_options):
        page = new_context(**context_options).new_page()
        page.goto("/accounts/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", USERS[username])
        page.click("button[type=submit]")
        page.wait_for_url("**/projects/")
        return page

    return go
