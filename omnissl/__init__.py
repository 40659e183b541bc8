"""omnissl: one framework for self-supervised learning on any modality.

The core (this package) is stacked in layers; a module imports only its own layer and those to its left
(``tests/core/test_layering.py`` checks every import, including those inside functions)::

    core  <  data, nn, augment  <  objectives  <  eval  <  train  <  workflows  <  report  <  cli

- ``core``: errors, registries, recipe configs, shared types, safe YAML, paths, collectives, instantiation.
- ``data`` / ``nn`` / ``augment``: in-memory datasets and pairing; transformer blocks; view policies.
- ``objectives``: one SSL objective per file.  ``eval``: the shared evaluation protocol.
- ``train``: assembling a recipe, the runner, checkpoints.  ``workflows``: train + evaluate, compare, export, list.
- ``report``: HTML run reports.  ``cli``: one module per ``omnissl`` verb.

Components register through entry points, the core's own (group ``omnissl.components``) exactly like the modality
plugins (group ``omnissl.modalities``), which the core never imports by name.
"""

from omnissl.core.registry import AUGMENTATIONS, DATASETS, ENCODERS, OBJECTIVES

__version__ = "0.1.0"
__all__ = ["AUGMENTATIONS", "DATASETS", "ENCODERS", "OBJECTIVES", "__version__"]
