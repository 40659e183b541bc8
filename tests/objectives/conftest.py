"""Fixtures for the objective tests: tiny modality-free encoders and a fixed batch of real CIFAR-10 views."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from omnissl.core.types import Encoder, EncoderOutput, TokenEncoder, TokenSequence, ViewSet


class TinyEncoder(Encoder):
    """Flattens any float tensor input to ``(B, F)`` and applies a 2-layer MLP: pooled ``(B, dim)``."""

    def __init__(self, in_features: int, dim: int = 16) -> None:
        super().__init__()
        self.embed_dim = dim
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                 nn.Linear(64, dim))

    def forward(self, x: Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.net(x.float()))


class TinyConvEncoder(Encoder):
    """Two conv layers + global average pool: any image size ``(B, 3, H, W)`` → pooled ``(B, dim)``."""

    def __init__(self, dim: int = 32) -> None:
        super().__init__()
        self.embed_dim = dim
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.Conv2d(16, dim, 3, stride=2, padding=1), nn.BatchNorm2d(dim), nn.ReLU())

    def forward(self, x: Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.net(x.float()).mean(dim=(2, 3)))


class ToyTokenEncoder(TokenEncoder):
    """A text/audio-like token encoder over ``{"values": (B, N, F), "padding_mask": (B, N)}``.

    Records the token count of every ``encode_tokens`` call so tests can see what the encoder was given.
    """

    def __init__(self, features: int = 6, dim: int = 16, max_len: int = 32, depth: int = 2) -> None:
        super().__init__()
        self.embed_dim = dim
        self.reconstruction_dim = features
        self.embed = nn.Linear(features, dim)
        self.position = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
        self.blocks = nn.ModuleList([nn.TransformerEncoderLayer(dim, 2, 32, 0.0, batch_first=True, norm_first=True)
                                     for _ in range(depth)])
        self.seen: list[tuple[int, ...]] = []

    def tokenize(self, x: dict[str, Tensor]) -> TokenSequence:
        values = x["values"]
        return TokenSequence(tokens=self.embed(values) + self.position[:, : values.shape[1]],
                             padding_mask=x.get("padding_mask"))

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        self.seen.append(tuple(sequence.tokens.shape))
        h, hidden = sequence.tokens, []
        for block in self.blocks:
            h = block(h, src_key_padding_mask=sequence.padding_mask)
            hidden.append(h)
        keep = (~sequence.padding_mask).float().unsqueeze(-1) if sequence.padding_mask is not None \
            else torch.ones_like(h[..., :1])
        pooled = (h * keep).sum(1) / keep.sum(1).clamp_min(1)
        return EncoderOutput(pooled=pooled, tokens=h, padding_mask=sequence.padding_mask,
                             hidden_states=hidden if return_hidden_states else None)

    def reconstruction_target(self, x: dict[str, Tensor]) -> Tensor:
        return x["values"]


@pytest.fixture
def tiny_encoder() -> Callable[..., TinyEncoder]:
    def make(in_features: int = 3 * 32 * 32, dim: int = 16) -> TinyEncoder:
        return TinyEncoder(in_features, dim)
    return make


@pytest.fixture
def conv_encoder() -> Callable[..., TinyConvEncoder]:
    return TinyConvEncoder


@pytest.fixture
def toy_token_encoder() -> Callable[..., ToyTokenEncoder]:
    return ToyTokenEncoder


@pytest.fixture(scope="session")
def cifar_images(data_root: Path) -> Tensor:
    """The first 128 images of the shared CIFAR-10 10k subset, ``(128, 3, 32, 32)`` uint8."""
    with np.load(data_root / "cifar10" / "cifar10_train_10k.npz") as data:
        x = data["x"][:128]
    return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


@pytest.fixture
def real_views(cifar_images: Tensor) -> Callable[..., ViewSet]:
    """Fixed random crops + flips of real images (drawn once, so the loss curve reflects learning, not noise)."""
    def make(count: int = 2, batch: int = 24, local: int = 0) -> ViewSet:
        generator = torch.Generator().manual_seed(0)
        images = cifar_images[:batch].float() / 255

        def crop(size: int, low: float, high: float) -> Tensor:
            out = []
            for image in images:
                side = int(32 * float(torch.empty(1).uniform_(low, high, generator=generator)) ** 0.5)
                i, j = (int(torch.randint(0, 33 - side, (1,), generator=generator)) for _ in range(2))
                patch = image[:, i:i + side, j:j + side].unsqueeze(0)
                patch = nn.functional.interpolate(patch, size=(size, size), mode="bilinear", align_corners=False)
                out.append(patch.flip(-1) if bool(torch.rand(1, generator=generator) < 0.5) else patch)
            return torch.cat(out)

        return ViewSet(global_views=[crop(32, 0.3, 1.0) for _ in range(count)],
                       local_views=[crop(16, 0.05, 0.3) for _ in range(local)], original=images)
    return make


def train_losses(objective: nn.Module, views: ViewSet, *, steps: int, lr: float = 1e-3) -> list[float]:
    """Adam on the objective's trainable parameters over one fixed batch; ``on_step_end`` after each step."""
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    losses = []
    for step in range(steps):
        output = objective(views)
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
        objective.on_step_end(step=step, total_steps=steps)
        losses.append(float(output.loss.detach()))
    return losses


@pytest.fixture
def train() -> Callable[..., list[float]]:
    return train_losses


def grads_of(module: nn.Module) -> list[Any]:
    return [p.grad for p in module.parameters()]
