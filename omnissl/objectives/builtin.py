"""The core objectives' entry point (``objectives`` in the ``omnissl.components`` group of ``pyproject.toml``):
importing it imports every module of :mod:`omnissl.objectives`, whose decorators register the objectives.

A new core objective is a new file in this folder with a decorator; nothing else to edit (then ``make manifests``).
"""

from __future__ import annotations

import importlib
import pkgutil

import omnissl.objectives as _objectives

for _module in pkgutil.iter_modules(_objectives.__path__):
    if _module.name != "builtin":
        importlib.import_module(f"{_objectives.__name__}.{_module.name}")
