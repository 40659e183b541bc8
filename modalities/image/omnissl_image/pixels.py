"""The input side of a public image backbone, inside the encoder: raw uint8 ``(B, C, H, W)`` (or augmented float
in [0, 1]) → the resized, centre-cropped, normalised float batch the checkpoint was trained on.

Public checkpoints were trained on their own pixel statistics (ImageNet mean/std for timm/torchvision, the HF
image processor's ``image_mean``/``image_std``), not the dataset's, so the encoder carries them and evaluation
needs no transform. Resizing runs on the batch's device with ``F.interpolate(antialias=True)``: close to, not
bit-identical with, the PIL resize of an HF image processor; at the checkpoint's native size nothing is resized and
the pixels equal the processor's output (tested).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# PIL resample codes used by HF image processors (PIL.Image.Resampling): 2 = bilinear, 3 = bicubic.
_PIL_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}


class PixelPreprocess(nn.Module):
    """``(B, C_in, H, W)`` → ``(B, C, H', W')`` float: rescale to [0, 1], repeat a grey channel when the model
    wants ``C`` = 3, resize (exact ``(h, w)``, or the shorter side to ``shortest_edge``), centre-crop, normalise.

    The constants are buffers that are not saved (they come from the model folder, not from training), so a
    checkpoint holds only the backbone's weights.
    """

    def __init__(self, *, mean: Sequence[float], std: Sequence[float], size: tuple[int, int] | None = None,
                 shortest_edge: int | None = None, crop: tuple[int, int] | None = None, mode: str = "bilinear",
                 channels: int = 3) -> None:
        super().__init__()
        if len(mean) != channels or len(std) != channels:
            raise ConfigError(f"image normalisation: mean {tuple(mean)} / std {tuple(std)} for {channels} channels")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.size, self.shortest_edge, self.crop, self.mode, self.channels = size, shortest_edge, crop, mode, channels

    def describe(self) -> dict[str, Any]:
        """The input contract in JSON terms (export READMEs, ``compare`` checks)."""
        return {"channels": self.channels, "size": self.size, "shortest_edge": self.shortest_edge,
                "crop": self.crop, "interpolation": self.mode, "mean": self.mean.flatten().tolist(),
                "std": self.std.flatten().tolist(), "input": "uint8 (B, C, H, W) or float in [0, 1]"}

    def _target(self, height: int, width: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        if self.shortest_edge is not None:
            short, long = min(height, width), max(height, width)
            other = int(self.shortest_edge * long / short)
            return (self.shortest_edge, other) if height <= width else (other, self.shortest_edge)
        return height, width

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"image backbone expects (B, C, H, W), got shape {tuple(x.shape)}")
        x = x.float().div(255) if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)  # grey datasets (MNIST) on RGB checkpoints: the usual channel repeat
        if x.shape[1] != self.channels:
            raise ValueError(f"image backbone expects {self.channels} channels (or 1, repeated), got "
                             f"{x.shape[1]} in shape {tuple(x.shape)}")
        target = self._target(x.shape[-2], x.shape[-1])
        if target != tuple(x.shape[-2:]):
            smooth = self.mode in ("bilinear", "bicubic")
            x = F.interpolate(x, size=target, mode=self.mode, antialias=smooth,
                              **({"align_corners": False} if smooth else {}))
            if self.mode == "bicubic":
                x = x.clamp(0.0, 1.0)  # bicubic overshoots; PIL clips to the pixel range too
        if self.crop is not None and tuple(x.shape[-2:]) != self.crop:
            height, width = self.crop
            if height > x.shape[-2] or width > x.shape[-1]:
                raise ValueError(f"crop {self.crop} larger than the resized image {tuple(x.shape[-2:])}")
            top, left = (x.shape[-2] - height) // 2, (x.shape[-1] - width) // 2
            x = x[..., top:top + height, left:left + width]
        return (x - self.mean) / self.std


def pil_mode(resample: Any) -> str:
    """An HF processor's ``resample`` (PIL code or enum) → an ``F.interpolate`` mode."""
    code = int(getattr(resample, "value", resample)) if resample is not None else 2
    if code not in _PIL_MODES:
        raise ConfigError(f"image processor resample={resample!r}: only nearest, bilinear and bicubic are supported")
    return _PIL_MODES[code]


def _size_dict(value: Any) -> dict[str, int]:
    """A processor size (``dict``, transformers 5's ``SizeDict``, or an int) → its set keys."""
    if value is None:
        return {}
    if isinstance(value, int):
        return {"height": value, "width": value}
    keys = ("height", "width", "shortest_edge", "longest_edge")
    found = {k: value.get(k) for k in keys} if isinstance(value, dict) else {k: getattr(value, k, None) for k in keys}
    if found.get("longest_edge") is not None and found.get("height") is None:
        raise ConfigError(f"image processor size {value}: longest_edge resizing is not supported")
    return {k: int(v) for k, v in found.items() if v is not None and k != "longest_edge"}


def from_hf_processor(processor: Any, *, channels: int, resize: int | None) -> PixelPreprocess:
    """The pixel pipeline of an HF image processor (``ViTImageProcessor``, ``BitImageProcessor`` for DINOv2,
    ``CLIPImageProcessor``): its mean/std, size, centre crop and resample filter. ``resize`` replaces the size
    (e.g. keep CIFAR at 32² on a CPU; the position embeddings are interpolated)."""
    def get(name: str, default: Any = None) -> Any:
        return getattr(processor, name, default)

    mean = get("image_mean") if get("do_normalize", True) else None
    std = get("image_std") if get("do_normalize", True) else None
    mean = [float(v) for v in (mean if mean is not None else [0.0] * channels)]
    std = [float(v) for v in (std if std is not None else [1.0] * channels)]
    if get("do_rescale", True) and abs(float(get("rescale_factor", 1 / 255)) - 1 / 255) > 1e-9:
        raise ConfigError(f"image processor rescale_factor={get('rescale_factor')}: only 1/255 is supported")
    size = _size_dict(get("size")) if get("do_resize", True) else {}
    crop = _size_dict(get("crop_size")) if get("do_center_crop", False) else None
    if resize is not None:
        return PixelPreprocess(mean=mean, std=std, size=(resize, resize), mode=pil_mode(get("resample")),
                               channels=channels)
    exact = (int(size["height"]), int(size["width"])) if "height" in size else None
    shortest = int(size["shortest_edge"]) if "shortest_edge" in size else None
    crop_hw = (int(crop["height"]), int(crop["width"])) if crop else None
    return PixelPreprocess(mean=mean, std=std, size=exact, shortest_edge=shortest, crop=crop_hw,
                           mode=pil_mode(get("resample")), channels=channels)
