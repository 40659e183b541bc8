"""Batched image augmentations that run on the training device with per-sample random parameters.

Every op takes ``(B, C, H, W)`` uint8 or float in [0, 1] and returns float in [0, 1]; randomness comes from
the torch generator of the batch's device, so a run is reproducible and resumable. The SimCLR/BYOL recipe
(random resized crop, flip, colour jitter, grayscale, blur, solarize) costs a few grid-sample and elementwise
kernels per batch instead of per-image PIL calls in DataLoader workers.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from omnissl.core.registry import AUGMENTATIONS

_LUMA = (0.299, 0.587, 0.114)
ImageOp = Callable[[Tensor], Tensor]


def as_float(x: Tensor) -> Tensor:
    if x.ndim != 4:
        raise ValueError(f"image augmentations expect (B, C, H, W), got shape {tuple(x.shape)}")
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


def _chance(batch: int, p: float, device: torch.device) -> Tensor:
    return (torch.rand(batch, device=device) < p).view(-1, 1, 1, 1)


def _gray(x: Tensor) -> Tensor:
    if x.shape[1] == 1:
        return x
    weights = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


class RandomResizedCrop:
    """Per-sample crop of random area ``scale`` and aspect ``ratio``, resized to ``size`` (one grid_sample)."""

    def __init__(self, size: int, scale: tuple[float, float], ratio: tuple[float, float]) -> None:
        self.size, self.scale, self.ratio = size, scale, ratio

    def __call__(self, images: Tensor) -> Tensor:
        x = as_float(images)
        b, device = x.shape[0], x.device
        area = torch.empty(b, device=device).uniform_(*self.scale)
        log_ratio = torch.empty(b, device=device).uniform_(math.log(self.ratio[0]), math.log(self.ratio[1]))
        aspect = log_ratio.exp()
        width = (area * aspect).sqrt().clamp(max=1.0)   # fractions of the image side
        height = (area / aspect).sqrt().clamp(max=1.0)
        centre_x = (torch.rand(b, device=device) * (1 - width) + width / 2) * 2 - 1
        centre_y = (torch.rand(b, device=device) * (1 - height) + height / 2) * 2 - 1
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0], theta[:, 0, 2] = width, centre_x
        theta[:, 1, 1], theta[:, 1, 2] = height, centre_y
        grid = F.affine_grid(theta, [b, x.shape[1], self.size, self.size], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


@AUGMENTATIONS.register("random_resized_crop", modality="image", description="random area/aspect crop, resized")
def random_resized_crop(*, size: int | None = None, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), image_size: int = 32) -> RandomResizedCrop:
    """Output side ``size`` (default: the dataset's ``image_size``; smaller for multi-crop local views)."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale must satisfy 0 < min ≤ max ≤ 1, got {scale}")
    return RandomResizedCrop(size or image_size, scale, ratio)


@AUGMENTATIONS.register("horizontal_flip", modality="image", description="mirror left-right with probability p")
def horizontal_flip(*, p: float = 0.5) -> ImageOp:
    def apply(images: Tensor) -> Tensor:
        x = as_float(images)
        return torch.where(_chance(x.shape[0], p, x.device), x.flip(-1), x)
    return apply


def _rotate_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate chroma in YIQ space by ``shift`` turns (a fast, batched stand-in for HSV hue shifting)."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    from_yiq = torch.linalg.inv(to_yiq)
    yiq = torch.einsum("ij,bjhw->bihw", to_yiq, x)
    angle = shift.view(-1, 1, 1) * 2 * math.pi
    i, q = yiq[:, 1], yiq[:, 2]
    rotated = torch.stack([yiq[:, 0], i * angle.cos() - q * angle.sin(), i * angle.sin() + q * angle.cos()], dim=1)
    return torch.einsum("ij,bjhw->bihw", from_yiq, rotated)


@AUGMENTATIONS.register("color_jitter", modality="image", description="brightness/contrast/saturation/hue, per sample")
def color_jitter(*, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.2, hue: float = 0.1,
                 p: float = 0.8) -> ImageOp:
    """SimCLR's strength-s jitter is (0.8s, 0.8s, 0.8s, 0.2s) with p=0.8; applied in a fixed order."""

    def factor(b: int, amount: float, device: torch.device) -> Tensor:
        return torch.empty(b, 1, 1, 1, device=device).uniform_(max(0.0, 1 - amount), 1 + amount)

    def apply(images: Tensor) -> Tensor:
        x = as_float(images)
        b, device = x.shape[0], x.device
        out = x * factor(b, brightness, device)
        mean = _gray(out).mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * factor(b, contrast, device) + mean
        if x.shape[1] == 3:
            out = (out - _gray(out)) * factor(b, saturation, device) + _gray(out)
            if hue > 0:
                out = _rotate_hue(out.clamp(0, 1), torch.empty(b, device=device).uniform_(-hue, hue))
        return torch.where(_chance(b, p, device), out.clamp(0, 1), x)
    return apply


@AUGMENTATIONS.register("random_grayscale", modality="image", description="convert to grey with probability p")
def random_grayscale(*, p: float = 0.2) -> ImageOp:
    def apply(images: Tensor) -> Tensor:
        x = as_float(images)
        return torch.where(_chance(x.shape[0], p, x.device), _gray(x).expand_as(x), x)
    return apply


@AUGMENTATIONS.register("gaussian_blur", modality="image", description="Gaussian blur with a per-sample sigma")
def gaussian_blur(*, kernel_size: int = 3, sigma: tuple[float, float] = (0.1, 2.0), p: float = 0.5) -> ImageOp:
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")

    def apply(images: Tensor) -> Tensor:
        x = as_float(images)
        b, c, h, w = x.shape
        s = torch.empty(b, 1, device=x.device).uniform_(*sigma)
        offsets = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - kernel_size // 2
        kernel = torch.exp(-(offsets.view(1, -1) ** 2) / (2 * s**2))
        kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(c, dim=0)  # (B·C, k)
        flat = x.reshape(1, b * c, h, w)
        pad = kernel_size // 2
        flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), kernel.view(b * c, 1, 1, -1), groups=b * c)
        flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), kernel.view(b * c, 1, -1, 1), groups=b * c)
        return torch.where(_chance(b, p, x.device), flat.view(b, c, h, w), x)
    return apply


@AUGMENTATIONS.register("solarize", modality="image", description="invert pixels above a threshold, probability p")
def solarize(*, threshold: float = 0.5, p: float = 0.2) -> ImageOp:
    def apply(images: Tensor) -> Tensor:
        x = as_float(images)
        return torch.where(_chance(x.shape[0], p, x.device) & (x >= threshold), 1 - x, x)
    return apply
