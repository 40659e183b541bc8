"""Causal language modelling: next-token prediction (Radford et al., 2018/2019, "Improving Language Understanding by
Generative Pre-Training" / "Language Models are Unsupervised Multitask Learners").

Generic over any discrete token sequence: text ids, audio codec codes, quantised time series. Input
``{"input_ids": (B, L), "attention_mask": (B, L)}`` or a bare ``(B, L)`` id tensor. Hidden state ``t`` of a *causal*
encoder predicts token ``t + 1``: logits from ``tokens[:, :-1]`` against targets ``ids[:, 1:]``; a target that is
padding is not predicted. The loss is the mean cross-entropy over predicted positions (float32).
"""

from __future__ import annotations

from torch import Tensor, nn

from omnissl.core.errors import IncompatibleError
from omnissl.objectives._global_stats import global_log, token_cross_entropy, token_mean
from omnissl.objectives.base import Objective
from omnissl.objectives.mlm import IGNORE, require_token_outputs, token_batch
from omnissl.core.registry import OBJECTIVES
from omnissl.core.types import Encoder, ObjectiveOutput, ViewSet


def shift_targets(ids: Tensor, attention: Tensor) -> Tensor:
    """``(B, L)`` ids → ``(B, L-1)`` targets: ``ids[:, t+1]`` for input position ``t``, ``-100`` where padding."""
    targets = ids[:, 1:].clone()
    targets[attention[:, 1:] == 0] = IGNORE
    return targets


class CausalLM(Objective):
    """Next-token prediction with a linear head over the vocabulary on a causal encoder's token outputs."""

    requires = "tokens"

    def __init__(self, encoder: Encoder, *, vocab_size: int) -> None:
        nn.Module.__init__(self)  # needs whole-sequence token outputs, not the subset-encoding TokenEncoder API
        require_token_outputs(encoder, "causal_lm")
        if not getattr(encoder, "is_causal", False):
            raise IncompatibleError(
                f"objective 'causal_lm' needs a causal encoder (position t sees only ≤ t, e.g. gpt2); "
                f"{type(encoder).__name__} is bidirectional, so next-token targets would be visible to it")
        self.encoder = encoder
        self.vocab_size = vocab_size
        self.norm = nn.LayerNorm(encoder.embed_dim)
        self.head = nn.Linear(encoder.embed_dim, vocab_size, bias=False)

    def forward(self, views: ViewSet) -> ObjectiveOutput:
        x = views.original if views.original is not None else views.global_views[0]
        ids, attention, rebuild = token_batch(x)
        if ids.shape[1] < 2:
            raise ValueError("causal_lm needs sequences of at least 2 tokens")
        output = self.encoder(rebuild(ids, attention))
        if output.tokens is None:
            raise IncompatibleError("causal_lm: the encoder returned no token outputs")
        targets = shift_targets(ids, attention)
        chosen = targets != IGNORE
        logits = self.head(self.norm(output.tokens[:, :-1][chosen])).float()  # (M, V), predicted positions only
        # ranks hold different numbers of non-pad targets: each rank's share of the global token mean
        loss = token_cross_entropy(logits, targets[chosen])
        accuracy = token_mean((logits.argmax(dim=1) == targets[chosen]).float())
        logged = global_log(loss)
        return ObjectiveOutput(loss=loss, logs={"lm_loss": logged, "perplexity": logged.exp(),
                                                "next_token_accuracy": global_log(accuracy)},
                               embeddings=output.pooled.detach())


@OBJECTIVES.register("causal_lm", description="next-token prediction on any discrete token sequence (GPT)")
def build_causal_lm(*, encoder: Encoder, vocab_size: int) -> CausalLM:
    """``vocab_size`` comes from the data bundle (the tokeniser or codebook size)."""
    return CausalLM(encoder, vocab_size=vocab_size)
