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


# The web apps in layers: each may import the layers below it, never one above. Pages (views and
# *_views modules, the admin, URL maps) sit on top of every app and may compose any of them.
LAYERS = ["lib", "ratelimit", "jobs", "projects", "training", "serving", "api"]
PAGES = {"views", "results", "admin", "urls", "pages"}


def _webui_imports() -> dict[str, set[str]]:
    """{module: webui modules it imports anywhere in its code}, for every module under webui/."""
    import ast

    found = {}
    for path in (REPO / "webui").rglob("*.py"):
        if "migrations" in path.parts:
            continue
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        names = set()
        tree = ast.parse(path.read_text())
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
            for inner in ast.walk(node)
        }  # imports for type hints only are never run
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("webui"):
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names if alias.name.startswith("webui"))
        found[module] = names
    return {module: {n for n in names if n in found} for module, names in found.items()}


def test_no_app_imports_one_above_it_except_its_pages():
    wrong = []
    for module, imports in _webui_imports().items():
        parts = module.split(".")
        if len(parts) < 3 or parts[1] not in LAYERS or PAGES & set(parts[2:]) or parts[-1].endswith("_views"):
            continue
        level = LAYERS.index(parts[1])
        for name in imports:
            app = name.split(".")[1]
            if app in LAYERS and LAYERS.index(app) > level:
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(sorted(wrong))


def test_webui_modules_import_each_other_without_cycles():
    graph = _webui_imports()
    cycles, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for name in sorted(graph.get(module, ())):
            if name == module or name.startswith(module + "."):  # a package and its own modules
                continue
            if state.get(name) == "open":
                cycles.append(" -> ".join(path[path.index(name) :] + [name]))
            elif name not in state:
                visit(name, path + [name])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)
