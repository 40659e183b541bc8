"""Where a pretrained-model builder loads from, and how its loading failures are summarised.

Shared by the public-backbone encoders of every plugin (``hf_vision``, ``hf_audio``, ``timm``): a local folder is
read offline; anything else is a Hub id, allowed only when the recipe says ``hub: true`` (nothing is downloaded
unless asked for). No third-party import here: the builders import their library themselves.
"""

from __future__ import annotations

from pathlib import Path

from omnissl.core.errors import ConfigError


def hub_or_local(path: str, *, hub: bool, example: str, key: str = "encoder") -> tuple[str, bool]:
    """``(where, local_files_only)`` for ``from_pretrained``: a local folder offline, or a Hub id when ``hub``."""
    local = Path(path).expanduser()
    if local.is_dir():
        return str(local), True
    if not hub:
        raise ConfigError(f"{key}.path: '{path}' is not a local model folder; to download a Hub id "
                          f"(e.g. {example}) set {key}.hub: true on a machine with a network")
    return path, False


def error_summary(error: BaseException) -> str:
    """``"Type: first line"`` (at most 200 characters of it) for one-line load errors."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
