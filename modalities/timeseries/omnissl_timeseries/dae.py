"""Denoising autoencoder for time series (Vincent et al., 2008, "Extracting and Composing Robust Features with
Denoising Autoencoders").

Series ``x (B, C, T)`` (NaN = padding/missing). Corruption ``x̃``: additive Gaussian noise ``noise_std`` times each
series' own standard deviation (per sample and channel, over its observed steps), and Vincent's masking noise —
each time step set to 0 in every channel with probability ``mask_rate``. The encoder's pooled code
``h = f(x̃) (B, D)`` goes through an MLP decoder to ``(B, C, T)`` (``T = seq_len``, the dataset's length) and the
loss is the squared error against the **clean** series, averaged over its observed (non-NaN) values (a rank's
share of the global mean over every rank's values under DDP). Draws from torch's RNG, batch as dim 0.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from omnissl.core.errors import ConfigError, DataError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl.objectives._global_stats import global_log, masked_share
from omnissl.objectives.base import Objective


def corrupt_series(x: Tensor, *, noise_std: float, mask_rate: float) -> Tensor:
    """``x (B, C, T)`` → Gaussian noise scaled by each series' std + whole steps zeroed at ``mask_rate``."""
    observed = ~torch.isnan(x)
    filled = torch.nan_to_num(x, nan=0.0)
    count = observed.sum(dim=-1, keepdim=True).clamp_min(1)
    mean = filled.sum(dim=-1, keepdim=True) / count
    std = (((filled - mean) * observed).pow(2).sum(dim=-1, keepdim=True) / count).sqrt()
    noisy = x + noise_std * std * torch.randn_like(x)
    drop = (torch.rand(x.shape[0], 1, x.shape[2], device=x.device) < mask_rate) & observed
    return noisy.masked_fill(drop, 0.0)


def observed_mse(prediction: Tensor, clean: Tensor) -> Tensor:
    """Mean squared error over the observed (non-NaN) values of ``clean (B, C, T)``."""
    observed = ~torch.isnan(clean)
    error = (prediction.float() - torch.nan_to_num(clean.float(), nan=0.0)).pow(2) * observed
    return masked_share(error.sum(), observed.sum().float())


class SeriesDAE(Objective):
    def __init__(self, encoder: Encoder, *, in_channels: int, seq_len: int, hidden_dim: int, noise_std: float,
                 mask_rate: float) -> None:
        super().__init__(encoder)
        self.in_channels, self.seq_len, self.noise_std, self.mask_rate = in_channels, seq_len, noise_std, mask_rate
        self.decoder = nn.Sequential(nn.Linear(encoder.embed_dim, hidden_dim), nn.ReLU(inplace=True),
                                     nn.Linear(hidden_dim, in_channels * seq_len))

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.global_views[0] if views.global_views else views.original
        if x.ndim != 3 or x.shape[1:] != (self.in_channels, self.seq_len):
            raise DataError(f"ts_dae: expects series (B, {self.in_channels}, {self.seq_len}) (in_channels, seq_len of "
                            f"the dataset), got {tuple(x.shape)}; crop augmentations change T — reconstruct full series")
        h = self.encoder(corrupt_series(x, noise_std=self.noise_std, mask_rate=self.mask_rate)).pooled
        prediction = self.decoder(h).view(-1, self.in_channels, self.seq_len)
        loss = observed_mse(prediction, x)
        return ObjectiveOutput(loss=loss, embeddings=h.detach(), logs={"reconstruction": global_log(loss)})


@OBJECTIVES.register("ts_dae", modality="timeseries",
                     description="Denoising autoencoder: noise + masked steps in, clean series out (Vincent et al., 2008)")
def build_ts_dae(*, encoder: Encoder, in_channels: int = 1, seq_len: int = 128, hidden_dim: int = 256,
                 noise_std: float = 0.2, mask_rate: float = 0.1) -> SeriesDAE:
    """``in_channels``/``seq_len`` come from the dataset; noise 0.2 std, 10 % of steps masked."""
    if noise_std < 0 or not 0.0 <= mask_rate < 1.0:
        raise ConfigError(f"objective: noise_std must be ≥ 0 and mask_rate in [0, 1), got {noise_std}, {mask_rate}")
    return SeriesDAE(encoder, in_channels=in_channels, seq_len=seq_len, hidden_dim=hidden_dim, noise_std=noise_std,
                     mask_rate=mask_rate)
