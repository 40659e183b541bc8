"""omnissl's image plugin: in-memory uint8 datasets, batched on-device augmentations, ResNet and ViT encoders.

Loaded through the ``omnissl.modalities`` entry point, exactly as a third-party plugin would be.
"""

from omnissl_image import augment, data, encoders  # noqa: F401  (registers components)
from omnissl_image import hf_vision, timm_backbone, torchvision_backbone  # noqa: F401  (public backbones, issue 21)

# The report's retrieval / MAE-reconstruction figures show this plugin's batches as pictures (the core does not
# guess modalities from tensor shapes).
from omnissl.report.hooks import register_image_inputs  # noqa: E402


def _is_image_batch(x: object) -> bool:
    import torch

    return isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] in (1, 3) and min(x.shape[2:]) >= 4


register_image_inputs(_is_image_batch)
