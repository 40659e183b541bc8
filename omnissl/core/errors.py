"""The project's own error types: every user mistake surfaces as one of these, with the path that is wrong."""

from __future__ import annotations

from pathlib import Path


class OmnisslError(Exception):
    """Base class of every error omnissl raises on purpose."""


class RegistryError(OmnisslError, KeyError):
    """Unknown or duplicate component name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(OmnisslError, ValueError):
    """A recipe or override is invalid; the message starts with the key path."""


class DataError(OmnisslError, ValueError):
    """Input data is malformed; the message names the file, row, key or shape.

    ``missing_path``: the file or folder that does not exist, when that is the problem; the core then adds where
    the data root came from and the dataset card to the message (a reader need not know either).
    """

    def __init__(self, message: str, *, missing_path: str | Path | None = None) -> None:
        super().__init__(message)  # args == (message,): pickles, and DataLoader workers re-raise it, unchanged
        self.missing_path = Path(missing_path) if missing_path is not None else None


class IncompatibleError(OmnisslError, TypeError):
    """Two components cannot work together (e.g. an objective needs tokens, the encoder only pools)."""


class CheckpointError(OmnisslError, RuntimeError):
    """A checkpoint is missing, truncated or does not match the model."""


class RunDirectoryError(OmnisslError, FileExistsError):
    """A run directory exists and would be overwritten."""
