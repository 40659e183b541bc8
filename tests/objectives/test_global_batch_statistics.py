"""Global-batch objectives: 2 gloo ranks with B samples each give the loss and the (DDP-averaged) parameter
gradients of one process with the 2B-sample global batch, within 1e-5 relative (the rule of omnissl.core.collectives).

Each case runs two forwards in training mode on the same batch and backpropagates their sum, so state updated
between them (DINO's centre, SwAV's queue) must also be the global batch's. BatchNorm in heads goes through
omnissl.nn.sync_batchnorm. Random draws inside forward (MAE/data2vec masks, MLM corruption) are made identical
between the set-ups by patching the sampler: it draws for the whole global batch from a fixed seed and hands rank r
rows r·B:(r+1)·B. Token batches carry padding of varying length, so per-rank token counts differ and only a
count-aware normalisation (local_share) can match.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omnissl_graph.dgi import DGI
from omnissl_graph.graphmae import GraphMAE
from omnissl_speech import wav2vec2 as w2v_module
from omnissl_timeseries.ts2vec import TS2Vec
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.data import Batch, Data

from omnissl.core.collectives import gather_cat_nograd
from omnissl.objectives import mae as mae_module
from omnissl.objectives import mlm as mlm_module
from omnissl.nn.sync_batchnorm import convert_sync_batchnorm
from omnissl.core.types import Encoder, EncoderOutput, TokenEncoder, TokenSequence, ViewSet

B, WORLD = 4, 2
# the real samplers, never a patch
_MASKING, _CORRUPT, _CROPS, _CORRUPT_NODES = mae_module.random_masking, mlm_module.mask_tokens, TS2Vec.crops, \
    GraphMAE.corrupt
_PERMUTATION = DGI.corrupt_permutation
_SPANS, _NEGATIVES, _GUMBEL = w2v_module.sample_mask_indices, w2v_module.sample_negative_indices, F.gumbel_softmax


class _Pooled(Encoder):
    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = 8
        self.net = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 8))

    def forward(self, x: Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.net(x))


class _Tokens(TokenEncoder):
    """Per-token MLP with padding-aware mean pooling; also a token/frame encoder for CPC."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim, self.reconstruction_dim = 8, 5
        self.embed, self.position = nn.Linear(5, 8), nn.Parameter(torch.randn(1, 6, 8) * 0.1)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh())

    def tokenize(self, x: dict[str, Tensor]) -> TokenSequence:
        return TokenSequence(tokens=self.embed(x["values"]) + self.position, padding_mask=x["padding_mask"])

    def encode_tokens(self, sequence: TokenSequence, *, return_hidden_states: bool = False) -> EncoderOutput:
        h1 = self.block(sequence.tokens)
        h2 = self.block(h1)
        keep = torch.ones_like(h2[..., :1]) if sequence.padding_mask is None else \
            (~sequence.padding_mask).float().unsqueeze(-1)
        return EncoderOutput(pooled=(h2 * keep).sum(1) / keep.sum(1).clamp_min(1), tokens=h2,
                             padding_mask=sequence.padding_mask, hidden_states=[h1, h2] if return_hidden_states else None)

    def forward(self, x: dict[str, Tensor]) -> EncoderOutput:
        return self.encode_tokens(self.tokenize(x))

    def reconstruction_target(self, x: dict[str, Tensor]) -> Tensor:
        return x["values"]


class _Text(Encoder):
    """Embedding → per-token MLP: each position sees only itself, so it is causal too."""

    def __init__(self) -> None:
        super().__init__()
        self.embed_dim, self.is_causal = 8, True
        self.output_kinds = frozenset({"pooled", "tokens"})
        self.embed, self.mix = nn.Embedding(12, 8), nn.Linear(8, 8)

    def forward(self, x: dict[str, Tensor]) -> EncoderOutput:
        h = torch.tanh(self.mix(self.embed(x["input_ids"])))
        keep = x["attention_mask"].float().unsqueeze(-1)
        return EncoderOutput(pooled=(h * keep).sum(1) / keep.sum(1), tokens=h, padding_mask=x["attention_mask"] == 0)


def _batch() -> dict[str, Any]:
    """The global batch of 2B samples: float views, token values with padding, text ids with padding."""
    g = torch.Generator().manual_seed(7)
    lengths = torch.tensor([6, 6, 5, 6, 3, 4, 6, 2])  # rank 1 holds fewer real tokens than rank 0
    pad = torch.arange(6).unsqueeze(0) >= lengths.unsqueeze(1)
    ids = torch.randint(2, 12, (2 * B, 6), generator=g).masked_fill(pad, 0)
    series = torch.randn(2 * B, 2, 16, generator=g)
    series[5, :, 12:] = float("nan")  # a shorter series on rank 1: fewer temporal anchors there
    wave_pad = torch.arange(400).unsqueeze(0) >= torch.tensor([400, 400, 360, 400, 240, 400, 300, 400]).unsqueeze(1)
    audio = {"wave": torch.randn(2 * B, 400, generator=g).masked_fill(wave_pad, 0.0), "padding_mask": wave_pad}
    graphs = []
    for n in (5, 4, 6, 5, 3, 6, 4, 5):
        edges = torch.randint(0, n, (2, 2 * n), generator=g)
        graphs.append(Data(x=torch.randn(n, 4, generator=g), edge_index=torch.cat([edges, edges.flip(0)], 1)))
    return {"views": [torch.randn(2 * B, 6, generator=g) for _ in range(4)],
            "tokens": {"values": torch.randn(2 * B, 6, 5, generator=g), "padding_mask": pad},
            "text": {"input_ids": ids, "attention_mask": (~pad).long()}, "series": series, "graphs": tuple(graphs),
            "audio": audio}


def _rows(value: Any, rows: slice) -> Any:
    if isinstance(value, dict):
        return {k: _rows(v, rows) for k, v in value.items()}
    if isinstance(value, list):
        return [_rows(v, rows) for v in value]
    return value[rows]


def _build(name: str) -> tuple[nn.Module, Callable[[dict[str, Any]], ViewSet]]:
    import omnissl.objectives.builtin  # noqa: F401 - registers the core objectives
    from omnissl.core.registry import ENCODERS, OBJECTIVES, load_plugins
    load_plugins()

    build = OBJECTIVES.get(name).builder
    pooled = lambda d: ViewSet(global_views=d["views"][:2], local_views=d["views"][2:])
    tokens = lambda d: ViewSet(global_views=[d["tokens"]])
    text = lambda d: ViewSet(global_views=[d["text"]], original=d["text"])
    audio = lambda d: ViewSet(global_views=[d["audio"]])
    series = lambda d: ViewSet(global_views=[d["series"]])
    graph = lambda d: ViewSet(global_views=[Batch.from_data_list(list(d["graphs"]))])
    encoder = lambda name, **kw: ENCODERS.get(name).builder(**kw)
    cases: dict[str, tuple[Callable[[], nn.Module], Callable[[dict[str, Any]], ViewSet]]] = {
        "dino": (lambda: build(encoder=_Pooled(), out_dim=16, hidden_dim=12, bottleneck_dim=6), pooled),
        "swav": (lambda: build(encoder=_Pooled(), projection_dim=6, hidden_dim=12, num_prototypes=5,
                               queue_length=16, freeze_prototypes_steps=0), pooled),
        "barlow_twins": (lambda: build(encoder=_Pooled(), projection_dim=6, hidden_dim=12), pooled),
        "vicreg": (lambda: build(encoder=_Pooled(), expander_dim=6, expander_layers=2), pooled),
        "mae": (lambda: build(encoder=_Tokens(), mask_ratio=0.5, decoder_dim=8, decoder_depth=1, decoder_heads=2),
                tokens),
        "data2vec": (lambda: build(encoder=_Tokens(), mask_ratio=0.5, top_k=2, decoder_dim=8, decoder_depth=1,
                                   decoder_heads=2), tokens),
        "cpc": (lambda: build(encoder=_Tokens(), context_dim=6, prediction_steps=2), tokens),
        "mlm": (lambda: build(encoder=_Text(), vocab_size=12, mask_token_id=1, special_token_ids=(0, 1),
                              mask_prob=0.3), text),
        "causal_lm": (lambda: build(encoder=_Text(), vocab_size=12), text),
        "ts2vec": (lambda: build(encoder=encoder("ts2vec_cnn", in_channels=2, hidden_dim=6, output_dim=6, depth=2,
                                                 dropout=0.0)), series),
        "dgi": (lambda: build(encoder=encoder("gcn", num_features=4, dims=(6, 6))), graph),
        "wav2vec2": (lambda: build(encoder=encoder("wav2vec2", hidden_size=8, num_layers=1, num_heads=2,
                                                   intermediate_size=16, conv_dim=8, conv_kernel=(10, 3),
                                                   conv_stride=(5, 2), pos_conv_kernel=4, codevector_dim=8,
                                                   num_codevectors_per_group=4),
                                   mask_prob=0.2, mask_length=2, num_negatives=3), audio),
        "graphmae": (lambda: build(encoder=encoder("gcn", num_features=4, dims=(6, 6)), num_features=4,
                                   decoder="gcn"), graph),
    }
    make, views = cases[name]
    torch.manual_seed(0)
    return convert_sync_batchnorm(make()), views


def _patch_samplers(full: dict[str, Any], rows: slice) -> None:
    """Rank r's masks are rows r·B:(r+1)·B of one fixed-seed draw over the whole global batch."""
    masking, corrupt = _MASKING, _CORRUPT

    def random_masking(batch: int, length: int, **kw: Any) -> Any:
        torch.manual_seed(11)
        plan = masking(2 * B, length, **{**kw, "padding_mask": full["tokens"]["padding_mask"]})
        return type(plan)(ids_keep=plan.ids_keep[rows], masked=plan.masked[rows],
                          keep_padding=None if plan.keep_padding is None else plan.keep_padding[rows])

    def mask_tokens(ids: Tensor, attention: Tensor, **kw: Any) -> tuple[Tensor, Tensor]:
        torch.manual_seed(11)
        corrupted, labels = corrupt(full["text"]["input_ids"], full["text"]["attention_mask"], **kw)
        return corrupted[rows], labels[rows]

    def crops(self: TS2Vec, x: Tensor) -> tuple[Tensor, Tensor, Tensor, int]:
        torch.manual_seed(11)
        first, second, valid, crop_l = _CROPS(self, full["series"])
        return first[rows], second[rows], valid[rows], crop_l

    def corrupt_permutation(n: int, *, device: torch.device) -> Tensor:
        torch.manual_seed(11)
        return torch.randperm(n, device=device)  # n is the global node count in both set-ups

    def corrupt_nodes(self: GraphMAE, x: Tensor, candidates: Tensor) -> tuple[Tensor, Tensor]:
        torch.manual_seed(11)
        graphs = full["graphs"]
        start = sum(g.num_nodes for g in graphs[: rows.start])
        out, masked = _CORRUPT_NODES(self, Batch.from_data_list(list(graphs)).x.float(),
                                     torch.arange(sum(g.num_nodes for g in graphs)))
        mine = (masked >= start) & (masked < start + x.shape[0])
        return out[start: start + x.shape[0]], masked[mine] - start

    def sample_mask_indices(frame_pad: Tensor, **kw: Any) -> Tensor:  # the frame padding of all ranks
        torch.manual_seed(11)
        return _SPANS(gather_cat_nograd(frame_pad), **kw)[rows]

    def sample_negative_indices(mask: Tensor, **kw: Any) -> Tensor:  # flat b·F + t indices, re-based to the rank
        torch.manual_seed(12)
        return _NEGATIVES(gather_cat_nograd(mask), **kw)[rows] - rows.start * mask.shape[1]

    mae_module.random_masking, mlm_module.mask_tokens = random_masking, mask_tokens
    w2v_module.sample_mask_indices, w2v_module.sample_negative_indices = sample_mask_indices, sample_negative_indices
    # Gumbel noise is drawn over (B·F·G, V) inside HF's quantiser, not per row: fix it to zero noise (a
    # straight-through arg-max), the same in both set-ups.
    F.gumbel_softmax = _noiseless_gumbel  # type: ignore[assignment]
    TS2Vec.crops, GraphMAE.corrupt = crops, corrupt_nodes  # type: ignore[method-assign]
    DGI.corrupt_permutation = staticmethod(corrupt_permutation)  # type: ignore[method-assign]


def _noiseless_gumbel(logits: Tensor, tau: float = 1.0, hard: bool = False, dim: int = -1, **_: Any) -> Tensor:
    soft = torch.softmax(logits / tau, dim=dim)
    if not hard:
        return soft
    index = soft.argmax(dim=dim, keepdim=True)
    return torch.zeros_like(soft).scatter_(dim, index, 1.0) - soft.detach() + soft


def _run(name: str, rows: slice) -> dict[str, Any]:
    """Two training forwards on this set-up's rows; the summed loss, the gradients and the state after."""
    full = _batch()
    objective, views = _build(name)
    objective.train()
    _patch_samplers(full, rows)
    local = _rows(full, rows)
    outputs = [objective(views(local)) for _ in range(2)]
    loss = outputs[0].loss + outputs[1].loss
    loss.backward()
    grads = {k: p.grad.clone() for k, p in objective.named_parameters() if p.grad is not None}
    logs = {k: float(v) for k, v in outputs[1].logs.items() if isinstance(v, Tensor) and v.numel() == 1}
    state = {k: v.clone() for k, v in objective.state_dict().items() if k in ("center", "queue")}
    return {"loss": loss.detach(), "grads": grads, "logs": logs, "state": state}


def _worker(rank: int, port: int, names: list[str], out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    results = {}
    for name in names:
        result = _run(name, slice(rank * B, (rank + 1) * B))
        dist.all_reduce(result["loss"])
        result["loss"] /= WORLD  # the mean over ranks of each rank's loss
        for grad in result["grads"].values():
            dist.all_reduce(grad)
            grad /= WORLD  # what DDP does
        results[name] = result
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


NAMES = ["dino", "swav", "barlow_twins", "vicreg", "mae", "data2vec", "cpc", "mlm", "causal_lm", "ts2vec", "dgi",
         "graphmae", "wav2vec2"]


def _close(got: Tensor, want: Tensor, scale: float = 0.0) -> bool:
    """1e-5 relative; ``scale`` (the whole gradient's norm) bounds float32 noise on gradients that are exactly 0
    in exact arithmetic (an encoder bias feeding BatchNorm: BN removes any constant shift)."""
    return float((got - want).norm()) <= 1e-5 * max(float(want.norm()), scale) + 1e-9


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("global_batch")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, NAMES, str(out)), nprocs=WORLD, join=True)
    return torch.load(Path(out) / "rank0.pt", weights_only=False)


@pytest.mark.parametrize("name", NAMES)
def test_two_ranks_match_one_process_on_the_global_batch(name: str, two_ranks: dict[str, Any],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mae_module, "random_masking", mae_module.random_masking)  # undone after the test
    monkeypatch.setattr(mlm_module, "mask_tokens", mlm_module.mask_tokens)
    monkeypatch.setattr(TS2Vec, "crops", _CROPS)
    monkeypatch.setattr(w2v_module, "sample_mask_indices", _SPANS)
    monkeypatch.setattr(w2v_module, "sample_negative_indices", _NEGATIVES)
    monkeypatch.setattr(F, "gumbel_softmax", _GUMBEL)
    monkeypatch.setattr(GraphMAE, "corrupt", _CORRUPT_NODES)
    monkeypatch.setattr(DGI, "corrupt_permutation", staticmethod(_PERMUTATION))
    single = _run(name, slice(0, 2 * B))
    dist_result = two_ranks[name]
    assert _close(dist_result["loss"], single["loss"]), (float(dist_result["loss"]), float(single["loss"]))
    assert single["grads"] and dist_result["grads"].keys() == single["grads"].keys()
    scale = float(torch.cat([g.flatten() for g in single["grads"].values()]).norm())
    for key, grad in single["grads"].items():
        assert _close(dist_result["grads"][key], grad, scale), key
    for key, value in single["state"].items():
        assert _close(dist_result["state"][key], value), key
    for key, value in single["logs"].items():
        assert abs(dist_result["logs"][key] - value) <= 1e-5 * abs(value) + 1e-6, key
