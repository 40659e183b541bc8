"""wav2vec 2.0 pretraining (Baevski et al., 2020, "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech
Representations").

Spans of the conv features are masked; the transformer's outputs ``c_t`` at masked steps must pick the Gumbel-
quantised target ``q_t`` among K distractors drawn from other masked steps of the same utterance:
``L_m = −log exp(sim(c_t, q_t)/κ) / Σ_{q̃ ∈ {q_t} ∪ Q_t} exp(sim(c_t, q̃)/κ)`` (eq. 3, cosine similarity), plus the
codebook diversity penalty ``L_d = (GV − Σ_g exp(H(p̄_g))) / GV`` (the fairseq / HF form of eq. 4), ``L = L_m + α L_d``.
Mask and distractor indices are sampled here with torch's RNG, on the device, respecting padding; they use
HF's ``Wav2Vec2ForPreTraining`` layout (``mask_time_indices (B, F)`` bool, ``sampled_negative_indices (B, F, K)``
flat indices ``b·F + t``), so the loss can be checked against HF's.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from omnissl.core.collectives import all_reduce_sum, all_reduce_sum_nograd, global_count
from omnissl.core.errors import IncompatibleError
from omnissl.objectives._global_stats import distributed, global_log, token_cross_entropy, token_mean
from omnissl.objectives.base import Objective
from omnissl.core.registry import OBJECTIVES
from omnissl.nn.transformer import masked_mean
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet
from omnissl_speech.encoders import Wav2Vec2Encoder


def sample_mask_indices(frame_pad: Tensor, *, mask_prob: float, mask_length: int, min_masks: int = 1) -> Tensor:
    """Span masks ``(B, F)`` bool over valid frames only (``frame_pad (B, F)`` True = padding).

    Per utterance of L valid frames: ``n = max(min_masks, round(mask_prob·L))`` distinct start frames drawn
    uniformly from ``[0, max(L − M, 0)]`` (at most as many as there are), each masking the next ``M`` frames
    (spans may overlap, as in the paper: p=0.065, M=10 masks ≈49 %), clipped to the valid length.
    """
    if mask_length < 1 or min_masks < 1:
        raise ValueError(f"mask_length and min_masks must be ≥ 1, got {mask_length}, {min_masks}")
    b, f = frame_pad.shape
    device = frame_pad.device
    lengths = (~frame_pad).sum(dim=1)
    if int(lengths.min()) < 2:
        row = int(lengths.argmin())
        raise ValueError(f"utterance {row} of the batch has {int(lengths[row])} valid frames; wav2vec 2.0 needs ≥ 2 "
                         f"(one target and one distractor)")
    last_start = (lengths - mask_length).clamp_min(0)  # inclusive
    num_starts = torch.minimum((mask_prob * lengths.float()).round().long().clamp_min(min_masks), last_start + 1)
    positions = torch.arange(f, device=device).unsqueeze(0)
    scores = torch.rand(b, f, device=device).masked_fill(positions > last_start.unsqueeze(1), -1.0)
    rank = scores.argsort(dim=1, descending=True).argsort(dim=1)  # rank of each frame's score within its row
    starts = (rank < num_starts.unsqueeze(1)) & (positions <= last_start.unsqueeze(1))
    mask = starts.clone()
    for offset in range(1, mask_length):
        mask[:, offset:] |= starts[:, :-offset]
    return mask & ~frame_pad


def sample_negative_indices(mask: Tensor, *, num_negatives: int) -> Tensor:
    """Distractors for every masked step: ``(B, F, K)`` flat indices ``b·F + t`` into a ``(B·F, D)`` table.

    Each is a uniformly drawn *other* masked step of the *same* utterance (with replacement when there are fewer
    than K others): draw ``u ∈ [0, m−2]`` and skip the positive's own rank r (``u ≥ r → u+1``), so a distractor
    never equals its positive and never lands on padding or an unmasked step. Unmasked steps point at themselves
    (they are not scored). Needs ≥ 2 masked steps per utterance.
    """
    b, f = mask.shape
    device = mask.device
    counts = mask.sum(dim=1)
    if int(counts.min()) < 2:
        raise ValueError(f"utterance {int(counts.argmin())} has {int(counts.min())} masked steps; need ≥ 2")
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)  # masked positions first, ascending
    rank = (mask.long().cumsum(dim=1) - 1).clamp_min(0)  # rank of each masked step among its row's masked steps
    draw = (torch.rand(b, f, num_negatives, device=device) * (counts - 1).view(b, 1, 1).float()).floor().long()
    draw = torch.minimum(draw, (counts - 2).view(b, 1, 1))  # guards rand() == 1.0 - ε rounding
    draw = draw + (draw >= rank.unsqueeze(-1)).long()
    negatives = order.gather(1, draw.view(b, -1)).view(b, f, num_negatives)
    own = torch.arange(f, device=device).view(1, f, 1).expand(b, f, num_negatives)
    negatives = torch.where(mask.unsqueeze(-1), negatives, own)
    return negatives + (torch.arange(b, device=device) * f).view(b, 1, 1)


def contrastive_logits(context: Tensor, targets: Tensor, negatives: Tensor, *, temperature: float) -> Tensor:
    """``context, targets (B, F, D)``, ``negatives (B, F, K)`` flat → logits ``(B, F, 1+K)`` (positive first),
    float32; a distractor identical to the positive gets −inf, as in fairseq/HF."""
    b, f, d = targets.shape
    distractors = targets.reshape(b * f, d)[negatives.reshape(-1)].view(b, f, -1, d)
    candidates = torch.cat([targets.unsqueeze(2), distractors], dim=2).float()
    logits = F.cosine_similarity(context.float().unsqueeze(2), candidates, dim=-1) / temperature
    same = (distractors == targets.unsqueeze(2)).all(dim=-1)
    return torch.cat([logits[..., :1], logits[..., 1:].masked_fill(same, float("-inf"))], dim=-1)


def contrastive_loss(logits: Tensor, mask: Tensor) -> Tensor:
    """Mean over masked steps of −log softmax(logits)[positive]; ``logits (B, F, 1+K)``, ``mask (B, F)``. Ranks
    mask different numbers of steps: under DDP this is the rank's share of the global mean over masked steps."""
    picked = logits[mask]
    return token_cross_entropy(picked, torch.zeros(picked.shape[0], dtype=torch.long, device=picked.device))


def diversity_loss(perplexity: Tensor, *, num_codevectors: int) -> Tensor:
    """``(G·V − perplexity) / (G·V)``: 0 when every codeword of every group is used equally often."""
    return (num_codevectors - perplexity.float()) / num_codevectors


def global_perplexity(quantizer: nn.Module, features: Tensor, mask: Tensor) -> Tensor:
    """HF's training-mode codebook perplexity, but of the **global** batch's marginal over masked frames: the
    diversity penalty is a batch statistic, so under DDP the soft assignments are all-reduced (differentiably).
    ``features (B, F, C)`` are the conv features fed to the quantiser, ``mask (B, F)`` the masked frames."""
    b, f, _ = features.shape
    logits = quantizer.weight_proj(features).view(b * f, quantizer.num_groups, -1).float()
    probs = torch.softmax(logits, dim=-1) * mask.flatten().float()[:, None, None]
    marginal = all_reduce_sum(probs.sum(dim=0)) / global_count(mask.sum(), device=mask.device)
    return torch.exp(-torch.sum(torch.xlogy(marginal, marginal), dim=-1)).sum()


class Wav2Vec2Pretraining(Objective):
    """Masked contrastive prediction of quantised conv features (pooled outputs for evaluation).

    The quantiser and the two projections are HF's modules (``Wav2Vec2GumbelVectorQuantizer``, ``project_hid``
    and ``project_q`` of ``Wav2Vec2ForPreTraining``); the Gumbel temperature decays geometrically from
    ``max_temperature`` to ``min_temperature`` over the run (the paper: 2 → 0.5 by ×0.999995 per update).
    """

    def __init__(self, encoder: Encoder, *, mask_prob: float, mask_length: int, num_negatives: int,
                 logit_temperature: float, diversity_weight: float, max_temperature: float,
                 min_temperature: float) -> None:
        if not isinstance(encoder, Wav2Vec2Encoder):
            raise IncompatibleError(f"objective 'wav2vec2' needs the 'wav2vec2' encoder, got {type(encoder).__name__}")
        super().__init__(encoder)
        from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2GumbelVectorQuantizer

        config = encoder.config
        self.quantizer = Wav2Vec2GumbelVectorQuantizer(config)
        nn.init.uniform_(self.quantizer.codevectors)  # HF's _init_weights does this; the bare module is empty
        nn.init.normal_(self.quantizer.weight_proj.weight, std=1.0)
        nn.init.zeros_(self.quantizer.weight_proj.bias)
        self.project_hid = nn.Linear(config.hidden_size, config.proj_codevector_dim)
        self.project_q = nn.Linear(config.codevector_dim, config.proj_codevector_dim)
        self.num_codevectors = config.num_codevector_groups * config.num_codevectors_per_group
        self.mask_prob, self.mask_length, self.num_negatives = mask_prob, mask_length, num_negatives
        self.logit_temperature, self.diversity_weight = logit_temperature, diversity_weight
        self.max_temperature, self.min_temperature = max_temperature, min_temperature
        self.register_buffer("gumbel_temperature", torch.tensor(float(max_temperature)))

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        encoder: Wav2Vec2Encoder = self.encoder  # type: ignore[assignment]
        values, attention, frame_pad = encoder.prepare(views.global_views[0])
        mask = sample_mask_indices(frame_pad, mask_prob=self.mask_prob, mask_length=self.mask_length,
                                   min_masks=2 if self.mask_length < 2 else 1)
        negatives = sample_negative_indices(mask, num_negatives=self.num_negatives)
        outputs = encoder.model(values, attention_mask=attention, mask_time_indices=mask)
        context = self.project_hid(outputs.last_hidden_state)
        self.quantizer.temperature = float(self.gumbel_temperature)
        quantized, perplexity = self.quantizer(outputs.extract_features, mask_time_indices=mask)
        if distributed() and self.training:  # HF's perplexity is the rank's; the penalty is the global batch's
            perplexity = global_perplexity(self.quantizer, outputs.extract_features, mask)
        targets = self.project_q(quantized.to(self.project_q.weight.dtype))
        logits = contrastive_logits(context, targets, negatives, temperature=self.logit_temperature)
        l_m = contrastive_loss(logits, mask)
        l_d = diversity_loss(perplexity, num_codevectors=self.num_codevectors)
        loss = l_m + self.diversity_weight * l_d
        with torch.no_grad():
            accuracy = global_log(token_mean((logits[mask].argmax(dim=-1) == 0).float()))
            mask_fraction = mask.float().sum() / (~frame_pad).sum() if not distributed() else \
                all_reduce_sum_nograd(mask.float().sum()) / all_reduce_sum_nograd((~frame_pad).sum().float())
            pooled = masked_mean(outputs.last_hidden_state, frame_pad)
        return ObjectiveOutput(loss=loss, embeddings=pooled.detach(), logs={
            "contrastive": global_log(l_m), "diversity": l_d.detach(), "perplexity": perplexity.detach(),
            "accuracy": accuracy, "mask_fraction": mask_fraction,
            "gumbel_temperature": float(self.gumbel_temperature)})

    def on_step_end(self, *, step: int, total_steps: int) -> None:
        fraction = min(1.0, (step + 1) / max(1, total_steps))
        value = self.max_temperature * math.exp(fraction * math.log(self.min_temperature / self.max_temperature))
        self.gumbel_temperature.fill_(value)


@OBJECTIVES.register("wav2vec2", modality="speech",
                     description="wav2vec 2.0: contrastive over quantised targets at masked steps + diversity")
def build_wav2vec2_objective(*, encoder: Encoder, mask_prob: float = 0.065, mask_length: int = 10,
                             num_negatives: int = 100, logit_temperature: float = 0.1,
                             diversity_weight: float = 0.1, max_temperature: float = 2.0,
                             min_temperature: float = 0.5) -> Wav2Vec2Pretraining:
    """Paper defaults: p=0.065, M=10, K=100, κ=0.1, α=0.1, Gumbel τ 2 → 0.5."""
    return Wav2Vec2Pretraining(encoder, mask_prob=mask_prob, mask_length=mask_length, num_negatives=num_negatives,
                               logit_temperature=logit_temperature, diversity_weight=diversity_weight,
                               max_temperature=max_temperature, min_temperature=min_temperature)
