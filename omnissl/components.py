"""Import the core's own registered components (objectives and generic augmentations).

Imported once by :func:`omnissl.registry.load_plugins`; a new core objective is a new file plus a line here.
"""

from omnissl.objectives import simclr  # noqa: F401
