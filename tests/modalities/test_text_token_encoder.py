"""Text encoders as TokenEncoders (issue 23 part 6): the core MAE and data2vec run on padded text batches; padding
and special tokens are never masked; MLM, which reads the plain forward, is unchanged."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from omnissl.core.errors import ConfigError, IncompatibleError
from omnissl.core.registry import load_plugins
from omnissl.core.types import TokenEncoder, ViewSet
from omnissl.objectives.data2vec import build_data2vec
from omnissl.objectives.mae import build_mae
from omnissl.objectives.masking import random_masking
from omnissl.objectives.mlm import build_mlm
from omnissl_text.collate import PadCollate
from omnissl_text.encoders import HFTextEncoder, build_bert, build_gpt2

SPECIALS = (0, 1, 2, 3, 4)  # [PAD] [UNK] [CLS] [SEP] [MASK]
VOCAB = 50


@pytest.fixture(scope="module", autouse=True)
def plugins() -> None:
    load_plugins()


def batch_of(lengths: list[int], *, seed: int = 0) -> dict[str, torch.Tensor]:
    """``[CLS] random content [SEP]`` rows of the given content lengths, right-padded with 0."""
    generator = torch.Generator().manual_seed(seed)
    rows = [{"input_ids": torch.tensor([2, *torch.randint(5, VOCAB, (n,), generator=generator).tolist(), 3]),
             "y": 0, "index": i} for i, n in enumerate(lengths)]
    return PadCollate(0)(rows)["x"]


def tiny_bert(*, depth: int = 2, dropout: float = 0.0, pool: str = "mean") -> TokenEncoder:
    encoder = build_bert(vocab_size=VOCAB, dim=32, depth=depth, heads=2, dropout=dropout, max_length=64, pool=pool,
                         special_token_ids=SPECIALS)
    assert isinstance(encoder, TokenEncoder)
    return encoder


@pytest.mark.parametrize("pool", ["cls", "mean", "last"])
def test_token_path_is_the_plain_forward_and_ignores_padding(pool: str) -> None:
    torch.manual_seed(0)
    encoder = tiny_bert(pool=pool).eval()
    x = batch_of([3, 9])
    sequence = encoder.tokenize(x)
    assert sequence.tokens.shape == (2, 11, 32) and sequence.padding_mask[0].tolist() == [False] * 5 + [True] * 6
    via_tokens = encoder.encode_tokens(sequence, return_hidden_states=True)
    plain = encoder(x)
    assert torch.allclose(via_tokens.tokens, plain.tokens, atol=1e-5)
    assert torch.allclose(via_tokens.pooled, plain.pooled, atol=1e-5)
    assert len(via_tokens.hidden_states) == 2 and torch.equal(via_tokens.hidden_states[-1], via_tokens.tokens)
    alone = encoder.encode_tokens(encoder.tokenize({k: v[:1, :5] for k, v in x.items()}))
    assert torch.allclose(via_tokens.pooled[0], alone.pooled[0], atol=1e-5)  # padding never enters the pool
    # The subset path: positions live in the embeddings, so a permuted subset gives the permuted outputs.
    order = torch.tensor([[4, 0, 2], [7, 1, 10]])
    subset = torch.stack([sequence.tokens[b, order[b]] for b in range(2)])
    out = encoder.encode_tokens(type(sequence)(tokens=subset, padding_mask=None))
    reference = encoder.encode_tokens(type(sequence)(tokens=subset[:, [1, 2, 0]], padding_mask=None))
    assert torch.allclose(out.tokens[:, [1, 2, 0]], reference.tokens, atol=1e-5)


def test_masking_never_selects_padding_or_special_tokens() -> None:
    x = batch_of([1, 6, 20, 40], seed=3)
    padding = x["attention_mask"] == 0
    specials = torch.isin(x["input_ids"], torch.tensor(SPECIALS)) & ~padding
    free = (~padding & ~specials).sum(dim=1)
    torch.manual_seed(0)
    for ratio in (0.15, 0.6, 0.9):
        for _ in range(20):
            plan = random_masking(4, x["input_ids"].shape[1], ratio=ratio, padding_mask=padding,
                                  device=torch.device("cpu"), always_visible=specials)
            assert not (plan.masked & padding).any() and not (plan.masked & specials).any()
            assert plan.masked.sum(dim=1).tolist() == (free - torch.floor(free * (1 - ratio)).long()).tolist()
            kept = plan.ids_keep[:, :2]  # [CLS] and [SEP] come first, in order: a CLS pool still reads [CLS]
            assert kept[:, 0].tolist() == [0] * 4 and kept[:, 1].tolist() == (free + 1).tolist()
            live = (torch.ones_like(plan.ids_keep, dtype=torch.bool) if plan.keep_padding is None
                    else ~plan.keep_padding)  # filler slots of the shorter rows are not tokens
            assert not padding.gather(1, plan.ids_keep)[live].any()
            assert int(live.sum()) == int((~padding).sum() - plan.masked.sum())


def test_masking_without_pinned_tokens_is_the_plain_masking() -> None:
    padding = batch_of([2, 7])["attention_mask"] == 0
    plans = []
    for pinned in (None, torch.zeros_like(padding)):
        torch.manual_seed(5)
        plans.append(random_masking(2, padding.shape[1], ratio=0.5, padding_mask=padding,
                                    device=torch.device("cpu"), always_visible=pinned))
    assert torch.equal(plans[0].masked, plans[1].masked)  # same RNG draw, same counts


def _changed_after_one_step(objective: torch.nn.Module, x: dict[str, torch.Tensor]) -> tuple[float, bool]:
    before = [p.detach().clone() for p in objective.encoder.parameters()]
    optimizer = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-3)
    loss = objective(ViewSet(global_views=[x], original=x)).loss
    loss.backward()
    optimizer.step()
    objective.on_step_end(step=0, total_steps=10)
    changed = any(not torch.equal(b, a) for b, a in zip(before, objective.encoder.parameters()))
    return float(loss), changed


def test_mae_predicts_masked_ids_with_cross_entropy() -> None:
    torch.manual_seed(0)
    objective = build_mae(encoder=tiny_bert(), mask_ratio=0.4, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    assert objective.decoder.out.out_features == VOCAB
    x = batch_of([4, 12, 7])
    objective.eval()  # no dropout: the one RNG draw of the forward is the mask
    captured = {}
    hook = objective.decoder.out.register_forward_hook(lambda m, i, o: captured.update(logits=o))
    torch.manual_seed(1)
    output = objective(ViewSet(global_views=[x]))
    hook.remove()
    padding = x["attention_mask"] == 0
    torch.manual_seed(1)
    plan = random_masking(3, x["input_ids"].shape[1], ratio=0.4, padding_mask=padding, device=torch.device("cpu"),
                          always_visible=torch.isin(x["input_ids"], torch.tensor(SPECIALS)))
    targets = x["input_ids"][plan.masked]
    assert captured["logits"].shape == (int(plan.masked.sum()), VOCAB) == (2 + 5 + 3, VOCAB)  # n − ⌊0.6·n⌋ for n = 4, 12, 7
    assert torch.allclose(output.loss, F.cross_entropy(captured["logits"], targets), atol=1e-6)
    assert abs(float(output.loss.detach()) - torch.log(torch.tensor(float(VOCAB)))) < 1.0  # near chance at init
    objective.train()
    loss, changed = _changed_after_one_step(objective, x)
    assert torch.isfinite(torch.tensor(loss)) and changed


def test_mae_with_nothing_to_mask_is_zero_not_nan() -> None:
    torch.manual_seed(0)
    objective = build_mae(encoder=tiny_bert(), mask_ratio=0.5, decoder_dim=32, decoder_depth=1, decoder_heads=2)
    x = batch_of([0, 0])  # only [CLS] [SEP]: both pinned
    assert float(objective(ViewSet(global_views=[x])).loss) == 0.0


def test_data2vec_runs_on_a_padded_text_batch() -> None:
    torch.manual_seed(0)
    objective = build_data2vec(encoder=tiny_bert(dropout=0.1), mask_ratio=0.3, top_k=2, decoder_dim=32,
                               decoder_depth=1, decoder_heads=2, momentum=0.9, momentum_end=0.99)
    x = batch_of([3, 15, 8, 1])
    teacher_before = [p.detach().clone() for p in objective.teacher.parameters()]
    loss, changed = _changed_after_one_step(objective, x)
    assert torch.isfinite(torch.tensor(loss)) and loss > 0 and changed
    assert any(not torch.equal(b, a) for b, a in zip(teacher_before, objective.teacher.parameters()))  # EMA moved
    too_deep = build_data2vec(encoder=tiny_bert(), top_k=3, decoder_dim=32, decoder_heads=2)
    with pytest.raises(ConfigError, match="top_k"):
        too_deep(ViewSet(global_views=[x]))


def test_mlm_is_unchanged_by_the_token_api() -> None:
    """MLM reads the plain HF forward: the same weights behind the old class give the identical loss, and the
    state dict (checkpoints) has the same keys."""
    torch.manual_seed(0)
    encoder = tiny_bert(dropout=0.1)
    plain = HFTextEncoder(encoder.model, pool="mean", is_causal=False, name="bert")
    assert encoder.state_dict().keys() == plain.state_dict().keys()
    x = batch_of([6, 9, 3, 20])
    losses = []
    for enc in (encoder, plain):
        torch.manual_seed(0)
        objective = build_mlm(encoder=enc, vocab_size=VOCAB, mask_token_id=4, special_token_ids=SPECIALS)
        torch.manual_seed(7)
        losses.append(objective(ViewSet(global_views=[x], original=x)).loss)
    assert torch.equal(losses[0], losses[1])


def test_causal_gpt2_is_not_a_token_encoder() -> None:
    gpt2 = build_gpt2(vocab_size=VOCAB, dim=32, depth=1, heads=2, max_length=64)
    assert not isinstance(gpt2, TokenEncoder)
    with pytest.raises(IncompatibleError, match="TokenEncoder"):
        build_mae(encoder=gpt2, decoder_dim=32, decoder_heads=2)
