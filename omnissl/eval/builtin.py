"""The core evaluation protocols' entry point (``evaluations`` in the ``omnissl.components`` group of
``pyproject.toml``): importing it imports every protocol module of :mod:`omnissl.eval`, whose decorators register
``knn``, ``linear_probe``, ``label_efficiency``, ``pseudolabel`` (self-training), ``finetune``, ``retrieval`` and
``zero_shot`` in ``EVALUATIONS``.
"""

from __future__ import annotations

from omnissl.eval import (  # noqa: F401  (registers them)
    finetune,
    knn,
    label_efficiency,
    linear_probe,
    retrieval,
    self_training,
)
