"""The project's own error types: every user mistake surfaces as one of these, with the path that is wrong."""

from __future__ import annotations


class OmnisslError(Exception):
    """Base class of every error omnissl raises on purpose."""


class RegistryError(OmnisslError, KeyError):
    """Unknown or duplicate component name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(OmnisslError, ValueError):
    """A recipe or override is invalid; the message starts with the key path."""


class DataError(OmnisslError, ValueError):
    """Input data is malformed; the message names the file, row, key or shape."""


class IncompatibleError(OmnisslError, TypeError):
    """Two components cannot work together (e.g. an objective needs tokens, the encoder only pools)."""


class CheckpointError(OmnisslError, RuntimeError):
    """A checkpoint is missing, truncated or does not match the model."""


class RunDirectoryError(OmnisslError, FileExistsError):
    """A run directory exists and would be overwritten."""
