"""A complete modality plugin in one file: noisy sine waves, a jitter augmentation and an MLP encoder.

Install it as a package with the entry point  [project.entry-points."omnissl.modalities"] sine = "omnissl_sine"
and `omnissl list` shows its components; recipes then use them by name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from omnissl.core.registry import AUGMENTATIONS, DATASETS, ENCODERS
from omnissl.core.types import DataBundle, Encoder, EncoderOutput


@DATASETS.register("sine_waves", modality="sine", description="noisy sine waves; the label is the frequency")
def sine_waves(*, count: int = 512, length: int = 64, data_root: Path = Path("."), synthetic: int | None = None,
               seed: int = 0) -> DataBundle:
    generator = torch.Generator().manual_seed(seed)
    n = synthetic or count
    labels = torch.randint(0, 4, (n,), generator=generator)
    t = torch.linspace(0, 1, length)
    x = torch.sin(2 * torch.pi * (labels[:, None] + 1) * t) + 0.3 * torch.randn(n, length, generator=generator)
    items = [{"x": x[i], "y": labels[i], "index": i} for i in range(n)]
    collate = lambda s: {k: torch.stack([torch.as_tensor(i[k]) for i in s]) for k in ("x", "y", "index")}  # noqa: E731
    return DataBundle(train=items, test=items, collate=collate, num_classes=4, input_spec={"length": length},
                      raw_features=lambda x: x)


@AUGMENTATIONS.register("sine_jitter", modality="sine", description="add Gaussian noise per sample")
def sine_jitter(*, sigma: float = 0.1):  # noqa: ANN201
    return lambda x: x + sigma * torch.randn_like(x)


class SineMLP(Encoder):
    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.embed_dim = dim
        self.net = nn.Sequential(nn.Linear(length, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.net(x))


@ENCODERS.register("sine_mlp", modality="sine", description="a two-layer MLP over the raw wave")
def sine_mlp(*, length: int, dim: int = 32) -> Encoder:
    return SineMLP(length, dim)
