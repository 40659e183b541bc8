"""HuBERT (Hsu et al., 2021, "HuBERT: Self-Supervised Speech Representation Learning by Masked Prediction of Hidden
Units"), over any speech :class:`~omnissl.core.types.TokenEncoder` (``spec_transformer``).

Targets are k-means cluster ids of per-token features, fitted offline — once, then frozen — in two iterations:

1. **features**: each token's log-mel values (the encoder's ``reconstruction_target`` ``(B, N, P)``, the role the
   paper's 39-d MFCCs play in its first iteration);
2. **refined** (after ``refine_at_step`` optimizer steps, if set): the hidden states of block ``target_layer`` of a
   frozen snapshot of the encoder taken at that step ``(B, N, D)`` (the paper re-clusters the 6th layer of the
   first-iteration model).

Each iteration's k-means (``num_clusters`` centroids, ``kmeans_iters`` Lloyd steps from evenly spaced initial
points, no RNG) is fitted on the first training batch it sees — the valid tokens of **every rank** (gathered), so
all ranks share the codebook — and kept in buffers (checkpoints carry it; a resumed run does not refit).

Masked prediction: a ``mask_ratio`` of the real tokens is hidden; as in this project's data2vec (data2vec 2.0
style) the student encoder sees the visible tokens only and a light decoder with mask tokens predicts, at every
position, a projection ``(B, N, E)`` whose cosine similarity with learned codeword embeddings ``e_c (K, E)``, / τ
(0.1), gives the logits (the paper's Eq. for ``p_f(c | X̃, t)``; HuBERT itself feeds mask embeddings to the
encoder). Loss: cross-entropy at the masked tokens only (α = 1, the paper's best), a rank's share of the global
masked-token mean under DDP. Paper: K = 100 then 500, 12-layer BASE, 250k + 400k steps on LibriSpeech 960 h.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import gather_cat_nograd
from omnissl.core.errors import ConfigError, DataError
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import ObjectiveOutput, TokenEncoder, ViewSet
from omnissl.objectives._global_stats import global_log, masked_share
from omnissl.objectives.base import Objective
from omnissl.objectives.ema import make_teacher
from omnissl.objectives.mae import encode_visible, reconstruction_dim
from omnissl.objectives.masking import TokenDecoder


@torch.no_grad()
def kmeans(points: Tensor, *, clusters: int, iterations: int) -> Tensor:
    """Lloyd's k-means on ``points (M, P)`` from ``clusters`` evenly spaced rows; an emptied cluster keeps its
    centroid. Returns centroids ``(K, P)`` (float32)."""
    points = points.float()
    if points.shape[0] < clusters:
        raise DataError(f"hubert: k-means needs ≥ {clusters} tokens (num_clusters) in its first batch, got "
                        f"{points.shape[0]}; use a larger batch or fewer clusters")
    init = torch.linspace(0, points.shape[0] - 1, clusters, device=points.device).round().long()
    centroids = points[init].clone()
    for _ in range(iterations):
        assign = assign_clusters(points, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=clusters).unsqueeze(1)
        centroids = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
    return centroids


def assign_clusters(points: Tensor, centroids: Tensor) -> Tensor:
    """Nearest centroid (squared Euclidean) of each row of ``points (M, P)``: ``(M,)`` long."""
    distance = points.float().pow(2).sum(1, keepdim=True) - 2 * points.float() @ centroids.T + centroids.pow(2).sum(1)
    return distance.argmin(dim=1)


class HuBERT(Objective):
    requires = "tokens"

    def __init__(self, encoder: TokenEncoder, *, num_clusters: int, kmeans_iters: int, refine_at_step: int | None,
                 target_layer: int | None, mask_ratio: float, projection_dim: int, temperature: float,
                 decoder_dim: int, decoder_depth: int, decoder_heads: int) -> None:
        super().__init__(encoder)
        self.num_clusters, self.kmeans_iters, self.refine_at_step = num_clusters, kmeans_iters, refine_at_step
        self.target_layer, self.mask_ratio, self.temperature = target_layer, mask_ratio, temperature
        self.decoder = TokenDecoder(in_dim=encoder.embed_dim, dim=decoder_dim, depth=decoder_depth,
                                    heads=decoder_heads, out_dim=projection_dim)
        self.codewords = nn.Parameter(torch.randn(num_clusters, projection_dim) * 0.02)
        self.snapshot = make_teacher(encoder)  # the refined iteration's frozen feature extractor
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))  # 0: features, 1: refined
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
        self.register_buffer("feature_centroids", torch.zeros(num_clusters, reconstruction_dim(encoder, None)))
        self.register_buffer("hidden_centroids", torch.zeros(num_clusters, encoder.embed_dim))

    @torch.no_grad()
    def target_features(self, x: object) -> tuple[Tensor, Tensor | None]:
        """``(B, N, P)`` log-mel per token (iteration 0) or ``(B, N, D)`` snapshot hidden states (iteration 1)."""
        encoder: TokenEncoder = self.encoder  # type: ignore[assignment]
        if int(self.iteration) == 0:
            return encoder.reconstruction_target(x), encoder.tokenize(x).padding_mask
        snapshot: TokenEncoder = self.snapshot  # type: ignore[assignment]
        sequence = snapshot.tokenize(x)
        hidden = snapshot.encode_tokens(sequence, return_hidden_states=True).hidden_states
        if not hidden:
            raise ConfigError(f"hubert: encoder {type(snapshot).__name__} gives no hidden_states for refined targets")
        layer = self.target_layer if self.target_layer is not None else max(1, len(hidden) // 2)
        if not 1 <= layer <= len(hidden):
            raise ConfigError(f"objective.target_layer: must be in 1..{len(hidden)} (encoder depth), got {layer}")
        return hidden[layer - 1], sequence.padding_mask

    @torch.no_grad()
    def targets(self, x: object) -> Tensor:
        features, padding = self.target_features(x)
        centroids = self.feature_centroids if int(self.iteration) == 0 else self.hidden_centroids
        if not bool(self.fitted):
            valid = features if padding is None else features[~padding]
            centroids.copy_(kmeans(gather_cat_nograd(valid.reshape(-1, features.shape[-1])),
                                   clusters=self.num_clusters, iterations=self.kmeans_iters))
            self.fitted.fill_(True)
        return assign_clusters(features.reshape(-1, features.shape[-1]), centroids).view(features.shape[:2])

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.global_views[0] if views.global_views else views.original
        encoder: TokenEncoder = self.encoder  # type: ignore[assignment]
        targets = self.targets(x)
        sequence = encoder.tokenize(x)
        if targets.shape != sequence.tokens.shape[:2]:
            raise DataError(f"hubert: targets {tuple(targets.shape)} do not line up with tokens "
                            f"{tuple(sequence.tokens.shape[:2])}")
        out, plan = encode_visible(encoder, sequence, ratio=self.mask_ratio)
        assert out.tokens is not None
        projected = self.decoder(out.tokens, plan, length=sequence.tokens.shape[1], padding_mask=sequence.padding_mask)
        logits = F.normalize(projected.float(), dim=-1) @ F.normalize(self.codewords.float(), dim=-1).T
        per_token = F.cross_entropy((logits / self.temperature).flatten(0, 1), targets.flatten(), reduction="none")
        weight = plan.masked.flatten().float()
        loss = masked_share((per_token * weight).sum(), weight.sum())
        hits = (logits.argmax(dim=-1).flatten() == targets.flatten()).float()
        return ObjectiveOutput(loss=loss, embeddings=out.pooled.detach(),
                               logs={"masked_ce": global_log(loss),
                                     "masked_acc": global_log(masked_share((hits * weight).sum(), weight.sum())),
                                     "iteration": float(self.iteration)})

    @torch.no_grad()
    def on_step_end(self, *, step: int, total_steps: int) -> None:
        if self.refine_at_step is not None and step + 1 == self.refine_at_step and int(self.iteration) == 0:
            self.snapshot.load_state_dict(self.encoder.state_dict())
            self.iteration.fill_(1)
            self.fitted.fill_(False)  # the next batch fits the refined codebook
            nn.init.normal_(self.codewords, std=0.02)  # the new cluster ids mean nothing to the old embeddings


@OBJECTIVES.register("hubert", modality="speech",
                     description="HuBERT: masked prediction of offline k-means units, refined in a 2nd iteration (Hsu et al., 2021)")
def build_hubert(*, encoder: TokenEncoder, num_clusters: int = 100, kmeans_iters: int = 20,
                 refine_at_step: int | None = None, target_layer: int | None = None, mask_ratio: float = 0.5,
                 projection_dim: int = 256, temperature: float = 0.1, decoder_dim: int = 128, decoder_depth: int = 1,
                 decoder_heads: int = 4) -> HuBERT:
    """Paper: K = 100 (MFCC) then 500 (layer 6), τ = 0.1, ≈ 50 % of frames masked, projection 256."""
    if num_clusters < 2 or kmeans_iters < 1:
        raise ConfigError(f"objective: num_clusters must be ≥ 2 and kmeans_iters ≥ 1, got {num_clusters}, {kmeans_iters}")
    if refine_at_step is not None and refine_at_step < 1:
        raise ConfigError(f"objective.refine_at_step: must be ≥ 1 (or null), got {refine_at_step}")
    if not 0.0 < mask_ratio < 1.0:
        raise ConfigError(f"objective.mask_ratio: must be in (0, 1), got {mask_ratio}")
    return HuBERT(encoder, num_clusters=num_clusters, kmeans_iters=kmeans_iters, refine_at_step=refine_at_step,
                  target_layer=target_layer, mask_ratio=mask_ratio, projection_dim=projection_dim,
                  temperature=temperature, decoder_dim=decoder_dim, decoder_depth=decoder_depth,
                  decoder_heads=decoder_heads)
