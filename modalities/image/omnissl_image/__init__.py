"""omnissl's image plugin: in-memory uint8 datasets, batched on-device augmentations, ResNet and ViT encoders.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be.
"""

from omnissl_image import augment, data, encoders  # noqa: F401  (registers components)
from omnissl_image import hf_vision, timm_backbone, torchvision_backbone  # noqa: F401  (public backbones, issue 21)
