"""omnissl: one framework for self-supervised learning on any modality.

The core (this package) holds registries, typed recipes, the training runner, the shared evaluation protocol and
the objectives. Modalities are plugins found through the ``omnissl.modalities`` entry-point group.
"""

from omnissl.core.registry import AUGMENTATIONS, DATASETS, ENCODERS, OBJECTIVES

__version__ = "0.1.0"
__all__ = ["AUGMENTATIONS", "DATASETS", "ENCODERS", "OBJECTIVES", "__version__"]
