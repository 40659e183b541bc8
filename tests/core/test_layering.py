"""The core never imports a plugin: checked on the source and on a fresh interpreter."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "omnissl"


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
