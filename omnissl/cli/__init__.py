"""The ``omnissl`` command line: one module per verb, wired by :mod:`omnissl.cli.main`."""

from omnissl.cli.main import main

__all__ = ["main"]
