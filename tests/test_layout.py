"""The ML core stays free of Django, and the web process stays free of torch."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return set(out.stdout.split())


CLASSIFIER_MODULES = (
    "artifacts", "backbones", "benchmark", "data", "errors", "evaluation", "export", "features",
    "finetune", "fit", "heads", "pipeline", "predict", "preprocessing", "progress", "strategies",
    "unknown", "__main__",
)  # fmt: skip


def test_it_imports_every_classifier_module_without_django():
    import pkgutil

    found = {m.name for m in pkgutil.iter_modules([str(REPO / "classifier")])}
    assert set(CLASSIFIER_MODULES) <= found
    names = sorted(found)  # modules added later are covered too
    # Importing classifier.__main__ as a module defines the CLI without running it.
    modules = _modules_after("import classifier\n" + "".join(f"import classifier.{m}\n" for m in names))
    assert {f"classifier.{m}" for m in names} <= modules
    assert not {m for m in modules if m == "django" or m.startswith("django.")}


def test_it_imports_the_web_application_without_torch():
    modules = _modules_after(
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'webui.settings'\n"
        "import django; django.setup()\n"
        "from django.urls import get_resolver; get_resolver().url_patterns\n"
        "import webui.wsgi"
    )
    assert "django" in modules
    assert "torch" not in modules
