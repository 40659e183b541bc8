"""The written layer order, enforced on the source (every import, including those inside functions), and the rule
that the core never imports a plugin (checked on the source and on a fresh interpreter).

    core  <  data, nn, augment  <  objectives  <  eval  <  train  <  workflows  <  report  <  cli

A module imports only its own layer and the layers to its left; data, nn and augment sit side by side and do not
import each other. ``omnissl/__init__.py`` imports only the core. The same picture is in CONTRIBUTING.md and in
``omnissl/__init__.py``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "omnissl"
LAYERS = [("core",), ("data", "nn", "augment"), ("objectives",), ("eval",), ("train",), ("workflows",), ("report",),
          ("cli",)]
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(CORE.parent).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports(path: Path, source: str | None = None) -> list[tuple[int, str]]:
    """Every omnissl module ``path`` imports, anywhere in the file (relative imports resolved, and
    ``importlib.import_module("omnissl....")`` with a constant name)."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found = []
    text = path.read_text(encoding="utf-8") if source is None else source
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found += [(node.lineno, module)] if node.module else [(node.lineno, f"{module}.{a.name}") for a in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return [(line, name) for line, name in found if name == "omnissl" or name.startswith("omnissl.")]


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def test_every_core_module_sits_in_a_layer() -> None:
    stray = [str(p.relative_to(CORE)) for p in CORE.rglob("*.py")
             if p != CORE / "__init__.py" and _layer(_module_name(p)) not in RANK]
    assert not stray, f"modules outside every layer (put them in one of {[n for ns in LAYERS for n in ns]}): {stray}"


def test_lower_layers_never_import_higher_ones() -> None:
    offenders = []
    for path in sorted(CORE.rglob("*.py")):
        mine = _layer(_module_name(path))
        for line, module in _imports(path):
            other = _layer(module)
            if mine is None:  # the package's own __init__: only the core
                ok = other == "core"
            else:
                ok = other == mine or (other in RANK and RANK[other] < RANK[mine])
            if not ok:
                offenders.append(f"{path.relative_to(CORE.parent)}:{line} ({mine or 'omnissl'}) imports {module} "
                                 f"({other or 'omnissl'})")
    assert not offenders, "layer order core < data, nn, augment < objectives < eval < train < workflows < report " \
                          "< cli broken:\n  " + "\n  ".join(offenders)


def test_the_layer_check_sees_function_level_and_relative_imports() -> None:
    """The checker itself: an import hidden in a function, a relative one and import_module all count."""
    source = ("def f():\n    from omnissl.cli.main import main\n"
              "    from ..train import runner\n    import importlib\n    importlib.import_module('omnissl.eval.knn')\n")
    found = [m for _, m in _imports(CORE / "core" / "probe.py", source)]
    assert found == ["omnissl.cli.main", "omnissl.train", "omnissl.eval.knn"]


def test_core_source_has_no_plugin_imports() -> None:
    offenders = []
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(("omnissl_", "modalities"))]
    assert not offenders, offenders


def test_importing_the_core_loads_no_plugin() -> None:
    code = (
        "import sys, omnissl, omnissl.cli.main, omnissl.workflows.session, omnissl.train.runner, omnissl.eval.protocol\n"
        "import omnissl.objectives.builtin, omnissl.core.registry\n"
        "print(sorted(m for m in sys.modules if m.startswith('omnissl_')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_exec_or_eval_in_the_project() -> None:
    root = CORE.parent
    for path in [*CORE.rglob("*.py"), *(root / "modalities").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("exec", "eval"), f"{path}: {node.func.id}()"


def test_datasets_folder_is_not_a_package() -> None:
    root = CORE.parent / "datasets"
    assert not list(root.rglob("__init__.py"))
