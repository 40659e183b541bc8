from __future__ import annotations

import pytest

from omnissl.core.errors import RegistryError
from omnissl.core.registry import ENCODERS, OBJECTIVES, REGISTRIES, Registry, load_plugins


def test_duplicate_name_is_an_error() -> None:
    registry: Registry = Registry("thing")
    registry.register("a")(lambda: 1)
    with pytest.raises(RegistryError, match="already registered"):
        registry.register("a")(lambda: 2)


def test_unknown_name_lists_available_and_closest() -> None:
    with pytest.raises(RegistryError) as info:
        OBJECTIVES.get("simclrr")
    message = str(info.value)
    assert "Did you mean 'simclr'?" in message
    assert "Available:" in message and "simclr" in message


def test_builtin_plugins_load_through_entry_points() -> None:
    plugins = load_plugins()
    assert "image" in plugins
    assert ENCODERS.get("resnet18").modality == "image"


def test_every_entry_has_a_description_and_keyword_only_builder() -> None:
    import inspect

    for registry in REGISTRIES.values():
        for entry in registry.entries():
            assert entry.description, f"{entry.kind} '{entry.name}' has no description"
            for parameter in entry.signature.parameters.values():
                assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, (
                    f"{entry.kind} '{entry.name}': parameter '{parameter.name}' must be keyword-only")


def test_cli_list_prints_components(capsys: pytest.CaptureFixture[str]) -> None:
    from omnissl.cli.main import main

    assert main(["list", "objectives"]) == 0
    out = capsys.readouterr().out
    assert "simclr" in out and "objectives" in out
