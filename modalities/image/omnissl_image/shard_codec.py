"""The ``image`` field codec for shards (``.jpg/.png/.webp/…`` members): decoded and resized in the DataLoader
workers to uint8 ``(3, S, S)`` (shorter side to ``image_size``, centre crop), so full-resolution images are never
stacked; the recipe's on-device augmentations (random-resized crops …) then run on these fixed-size crops."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from omnissl.core.errors import ConfigError, DataError
from omnissl.data.codecs import register_codec
from omnissl_image.folder import decode_native, decode_pil, fit_tensor

EXTENSIONS = ("jpg", "jpeg", "png", "webp", "bmp", "ppm", "pgm", "tif", "tiff", "gif")


def decode_image_bytes(data: bytes, *, image_size: int, where: str) -> Tensor:
    """One member's bytes → uint8 ``(3, S, S)``: 8-bit JPEG/PNG by ``torchvision.io``, the rest by PIL."""
    if not data:
        raise DataError(f"{where}: empty image member")
    tensor = decode_native(data)
    if tensor is None:
        tensor = decode_pil(data, where=where)
    if 0 in tensor.shape:
        raise DataError(f"{where}: image has no pixels, shape {tuple(tensor.shape)}")
    return fit_tensor(tensor, image_size=image_size)


class ImageCodec:
    def __init__(self, *, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.image_size = image_size
        self.input_spec: dict[str, Any] = {"in_channels": 3, "image_size": image_size, "mean": mean, "std": std}

    def decode(self, data: bytes, *, where: str) -> Tensor:
        return decode_image_bytes(data, image_size=self.image_size, where=where)

    def collate(self, values: Sequence[Tensor]) -> Tensor:
        return torch.stack(list(values))

    def synthetic(self, count: int, *, seed: int) -> list[bytes]:
        return synthetic_jpegs(count, size=self.image_size, seed=seed)


def synthetic_jpegs(count: int, *, size: int, seed: int) -> list[bytes]:
    """``count`` JPEGs of seeded random blocks (compressible like photos, unlike white noise)."""
    from PIL import Image

    generator = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(count):
        blocks = torch.randint(0, 256, (max(size // 8, 1), max(size // 8, 1), 3), generator=generator)
        array = blocks.to(torch.uint8).repeat_interleave(8, 0).repeat_interleave(8, 1)[:size, :size].numpy()
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def build_image_codec(*, image_size: int = 64, stats_from: int = 256, examples: Sequence[bytes] = ()) -> ImageCodec:
    """Channel mean/std from the first ``stats_from`` example members (ImageNet's when there are none)."""
    if image_size < 1:
        raise ConfigError(f"data.decode.image.image_size: must be positive, got {image_size}")
    crops = []
    for i, data in enumerate(examples[:stats_from]):
        try:
            crops.append(decode_image_bytes(data, image_size=image_size, where=f"example {i}"))
        except DataError:
            continue  # only the statistic leaves it out: reading that sample still raises (or skips and counts)
    if not crops:
        return ImageCodec(image_size=image_size, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    sample = torch.stack(crops).float().div(255)
    mean = tuple(round(v, 4) for v in sample.mean(dim=(0, 2, 3)).tolist())
    std = tuple(round(v, 4) for v in sample.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist())
    return ImageCodec(image_size=image_size, mean=mean, std=std)


register_codec("image", extensions=EXTENSIONS, build=build_image_codec)
