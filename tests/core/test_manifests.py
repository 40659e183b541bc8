"""The per-plugin manifests that serve ``omnissl list`` list exactly what the live registry holds.

When this fails after you added, renamed or changed a component, regenerate and commit the manifests::

    make manifests        # = .venv/bin/python -m omnissl.workflows.manifests --write
"""

from __future__ import annotations

import importlib.metadata
import io
import json
from contextlib import redirect_stdout

import pytest

from omnissl.core import manifests
from omnissl.core.manifests import REGENERATE
from omnissl.core.registry import COMPONENT_GROUP, ENTRY_POINT_GROUP, load_plugins


def test_every_manifest_matches_the_live_registry() -> None:
    from omnissl.workflows.manifests import differences

    lines = differences()
    assert not lines, "manifests differ from the registry:\n  " + "\n  ".join(lines) + f"\nregenerate: {REGENERATE}"


def test_every_builtin_entry_point_ships_a_manifest() -> None:
    load_plugins()
    for group in (COMPONENT_GROUP, ENTRY_POINT_GROUP):
        for entry_point in importlib.metadata.entry_points(group=group):
            folder = manifests.entry_point_dir(entry_point)
            assert folder is not None and (folder / manifests.MANIFEST_NAME).is_file(), (entry_point, REGENERATE)
            data = json.loads((folder / manifests.MANIFEST_NAME).read_text(encoding="utf-8"))
            assert data[entry_point.name]["components"], entry_point.name


def test_a_manifest_older_than_its_code_is_not_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    image = next(ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == "image")
    manifests.forget_cache()
    monkeypatch.setattr(manifests, "source_hash", lambda folder: "edited-since")
    try:
        assert manifests.manifest_components(image) is None
    finally:
        manifests.forget_cache()


def test_list_from_manifests_shows_what_the_registry_has() -> None:
    """The listing (from manifests, or live where they are stale) names every registered component once."""
    from omnissl.cli.main import main
    from omnissl.core.registry import REGISTRIES

    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["list"]) == 0
    listed = {line.split()[0] for line in out.getvalue().splitlines() if line.startswith("  ")}
    live = {e.name for registry in REGISTRIES.values() for e in registry.entries()}
    assert listed == live
