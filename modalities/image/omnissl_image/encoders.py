"""Image encoders: ResNets (torchvision-named residual blocks), and a small ViT with token outputs."""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from omnissl_image.resnet_blocks import BasicBlock, Bottleneck

from omnissl.core.registry import ENCODERS
from omnissl.nn.transformer import TransformerTrunk
from omnissl.core.types import Encoder, EncoderOutput, TokenEncoder, TokenSequence


class InputNormalize(nn.Module):
    """uint8 or [0, 1] float ``(B, C, H, W)`` → standardised float with the dataset's channel mean/std."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        return (x - self.mean) / self.std


class ResNetEncoder(Encoder):
    """ResNet (He et al., 2016) from torchvision's blocks, with a width multiplier and the CIFAR stem
    (3×3 conv, stride 1, no max-pool) used by SimCLR for 32×32 inputs. Output: pooled ``(B, 8·width·expansion)``."""

    def __init__(self, *, block: type[BasicBlock] | type[Bottleneck], layers: Sequence[int], width: int,
                 cifar_stem: bool, in_channels: int, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.normalize = InputNormalize(mean, std)
        if cifar_stem:
            stem: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)]
        else:
            stem = [nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)]
        stem += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if not cifar_stem:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        stages, channels = [], width
        for index, count in enumerate(layers):
            planes = width * 2**index
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or channels != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv2d(channels, planes * block.expansion, 1, stride, bias=False),
                                           nn.BatchNorm2d(planes * block.expansion))
            blocks = [block(channels, planes, stride, downsample)]
            channels = planes * block.expansion
            blocks += [block(channels, planes) for _ in range(count - 1)]
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.embed_dim = channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> EncoderOutput:
        features = self.stages(self.stem(self.normalize(x)))
        return EncoderOutput(pooled=features.mean(dim=(2, 3)))



@ENCODERS.register("resnet18", modality="image", description="ResNet-18 (torchvision blocks), optional CIFAR stem")
def build_resnet18(*, width: int = 64, cifar_stem: bool = False, in_channels: int = 3,
                   mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.25, 0.25, 0.25)) -> Encoder:
    return ResNetEncoder(block=BasicBlock, layers=(2, 2, 2, 2), width=width, cifar_stem=cifar_stem,
                         in_channels=in_channels, mean=mean, std=std)


@ENCODERS.register("resnet10", modality="image", description="ResNet-10 (one block per stage): a fast CPU CNN")
def build_resnet10(*, width: int = 32, cifar_stem: bool = True, in_channels: int = 3,
                   mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.25, 0.25, 0.25)) -> Encoder:
    return ResNetEncoder(block=BasicBlock, layers=(1, 1, 1, 1), width=width, cifar_stem=cifar_stem,
                         in_channels=in_channels, mean=mean, std=std)


@ENCODERS.register("resnet50", modality="image", description="ResNet-50 (torchvision bottleneck blocks)")
def build_resnet50(*, width: int = 64, cifar_stem: bool = False, in_channels: int = 3,
                   mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.25, 0.25, 0.25)) -> Encoder:
    return ResNetEncoder(block=Bottleneck, layers=(3, 4, 6, 3), width=width, cifar_stem=cifar_stem,
                         in_channels=in_channels, mean=mean, std=std)


class VisionTransformer(TokenEncoder):
    """ViT (Dosovitskiy et al., 2021): patch embedding + learned positions + pre-norm transformer blocks.

    ``tokenize``: ``(B, C, H, W)`` → ``(B, N, D)`` with ``N = (H/p)·(W/p)``; ``encode_tokens`` prepends a CLS
    token and runs the blocks on whatever subset of tokens it is given (MAE passes only the visible ones).
    Pooled output: the CLS token (``pool="cls"``) or the mean of tokens (``pool="mean"``).
    """

    def __init__(self, *, image_size: int, patch_size: int, in_channels: int, dim: int, depth: int, heads: int,
                 mlp_ratio: float, pool: Literal["cls", "mean"], dropout: float, mean: Sequence[float],
                 std: Sequence[float]) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.normalize = InputNormalize(mean, std)
        self.patch_size, self.in_channels = patch_size, in_channels
        self.num_patches = (image_size // patch_size) ** 2
        self.embed_dim = dim
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, patch_size)
        self.position = nn.Parameter(torch.zeros(1, self.num_patches, dim))
        self.trunk = TransformerTrunk(dim=dim, depth=depth, heads=heads, mlp_ratio=mlp_ratio, dropout=dropout,
                                      pool=pool)
        nn.init.trunc_normal_(self.position, std=0.02)

    def positions(self, grid_h: int, grid_w: int) -> Tensor:
        """Position embeddings ``(1, grid_h·grid_w, D)``; bicubically resized when the grid differs from the one
        the ViT was built for (multi-crop local views, other resolutions), as DINO does."""
        side = int(self.num_patches**0.5)
        if grid_h * grid_w == self.num_patches and grid_h == side:
            return self.position
        grid = self.position.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)

    def tokenize(self, x: Tensor) -> TokenSequence:
        patches = self.patch_embed(self.normalize(x))
        grid_h, grid_w = patches.shape[-2:]
        tokens = patches.flatten(2).transpose(1, 2)
        return TokenSequence(tokens=tokens + self.positions(grid_h, grid_w))

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        return self.trunk(sequence, return_hidden_states=return_hidden_states)

    def reconstruction_target(self, x: Tensor) -> Tensor:
        """Pixel patches ``(B, N, p·p·C)`` in the normalised input space."""
        p = self.patch_size
        pixels = self.normalize(x)
        b, c, h, w = pixels.shape
        patches = pixels.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return patches.reshape(b, (h // p) * (w // p), p * p * c)


@ENCODERS.register("vit", modality="image", description="Vision Transformer with token outputs (MAE/DINO/data2vec)")
def build_vit(*, image_size: int = 32, patch_size: int = 4, in_channels: int = 3, dim: int = 192, depth: int = 6,
              heads: int = 3, mlp_ratio: float = 4.0, pool: Literal["cls", "mean"] = "cls", dropout: float = 0.0,
              mean: tuple[float, ...] = (0.5, 0.5, 0.5), std: tuple[float, ...] = (0.25, 0.25, 0.25)) -> Encoder:
    """Defaults are ViT-Tiny width (192) at depth 6 for 32×32 inputs; ViT-S/16 is dim=384, depth=12, heads=6."""
    return VisionTransformer(image_size=image_size, patch_size=patch_size, in_channels=in_channels, dim=dim,
                             depth=depth, heads=heads, mlp_ratio=mlp_ratio, pool=pool, dropout=dropout, mean=mean,
                             std=std)
