"""Import the core's own registered components: every module in ``omnissl.objectives``, and the paired dataset.

Imported once by :func:`omnissl.core.registry.load_plugins`. A new core objective is a new file with a decorator;
nothing else to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

import omnissl.objectives as _objectives
import omnissl.data.paired  # noqa: F401  (registers the "paired" dataset)
import omnissl.data.shard_datasets  # noqa: F401  (registers the "webdataset" and "parquet_shards" datasets)
from omnissl.eval import finetune, knn, label_efficiency, linear_probe, retrieval  # noqa: F401  (the evaluations)

for _module in pkgutil.iter_modules(_objectives.__path__):
    importlib.import_module(f"{_objectives.__name__}.{_module.name}")
