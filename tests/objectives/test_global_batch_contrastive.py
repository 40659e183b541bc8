"""Global batch under DDP for the contrastive family (issue 20): 2 gloo ranks with B rows each give the loss, the
DDP-averaged gradients and the logs of one process with the 2B rows — for SimCLR, SimCSE, MoCo v2/v3, BYOL, SimSiam,
CLIP, SigLIP, SCARF, VIME, GraphCL, GRACE and TS-TCC — and MoCo v2's queue ends up as one process would fill it.

BatchNorm in the heads runs as ``omnissl.nn.sync_batchnorm`` (bit-identical to BatchNorm in one process). Encoders have
no dropout: per-rank dropout masks cannot match one process's draws, and the loss algebra is what is checked here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn

from omnissl.nn.sync_batchnorm import convert_sync_batchnorm
from omnissl.core.types import Encoder, EncoderOutput, ViewSet

ROWS, FEATURES, SEQ = 8, 6, 6  # global batch of 8 rows: 4 per rank
WORLD = 2


class RowEncoder(Encoder):
    """``(B, F)`` floats, ``(B, N, F)`` sequences or tabular dicts → pooled ``(B, dim)`` (and tokens for sequences)."""

    output_kinds = frozenset({"pooled", "tokens"})

    def __init__(self, in_features: int = FEATURES, dim: int = 8) -> None:
        super().__init__()
        self.embed_dim = dim
        self.net = nn.Sequential(nn.Linear(in_features, 16), nn.Tanh(), nn.Linear(16, dim))

    def forward(self, x: Any) -> EncoderOutput:
        if isinstance(x, dict):
            x = torch.cat([x["numeric"], x["categorical"].float()], dim=1)
        h = self.net(x.float())
        if h.ndim == 3:
            return EncoderOutput(pooled=h.mean(1), tokens=h)
        return EncoderOutput(pooled=h)

    def node_embeddings(self, x: Tensor) -> Tensor:  # what GRACE reads
        return self(x).pooled


def _rows(seed: int, *shape: int) -> Tensor:
    return torch.randn(ROWS, *shape, generator=torch.Generator().manual_seed(seed))


def _pair_views(rows: slice) -> ViewSet:
    return ViewSet(global_views=[_rows(1, FEATURES)[rows], _rows(2, FEATURES)[rows]], local_views=[],
                   original=_rows(3, FEATURES)[rows])


def _single(kind: str, **params: Any) -> Callable[[], tuple[nn.Module, Callable[[slice], Any]]]:
    def make() -> tuple[nn.Module, Callable[[slice], Any]]:
        from omnissl.core.registry import OBJECTIVES
        return OBJECTIVES.get(kind).builder(encoder=RowEncoder(), **params), _pair_views
    return make


def _paired(kind: str) -> Callable[[], tuple[nn.Module, Callable[[slice], Any]]]:
    def make() -> tuple[nn.Module, Callable[[slice], Any]]:
        from omnissl.core.registry import OBJECTIVES
        objective = OBJECTIVES.get(kind).builder(encoders={"a": RowEncoder(), "b": RowEncoder(in_features=4)}, embed_dim=8)
        return objective, lambda rows: {"a": ViewSet(global_views=[_rows(1, FEATURES)[rows]]),
                                        "b": ViewSet(global_views=[_rows(2, 4)[rows]])}
    return make


def _table(seed: int, rows: slice) -> dict[str, Tensor]:
    categorical = torch.randint(0, 4, (ROWS, 2), generator=torch.Generator().manual_seed(seed))
    return {"numeric": _rows(seed, 4)[rows], "categorical": categorical[rows]}


def _scarf() -> tuple[nn.Module, Callable[[slice], Any]]:
    from omnissl_tabular.objectives import build_scarf
    objective = build_scarf(encoder=RowEncoder(), temperature=0.5, projection_dim=8, hidden_dim=16)
    return objective, lambda rows: ViewSet(global_views=[_table(4, rows)], original=_table(5, rows))


class _VimeFixedDraws(nn.Module):
    """VIME's loss for fixed mask/marginal draws (the draws are per rank in training; the loss is what must agree)."""

    def __init__(self) -> None:
        super().__init__()
        from omnissl_tabular.objectives import Vime
        self.vime = Vime(RowEncoder(), mask_rate=0.3, alpha=2.0, num_numeric=4, categorical_cardinalities=(4, 4),
                         marginals=None)  # type: ignore[arg-type]

    def forward(self, pair: tuple[dict[str, Tensor], dict[str, Tensor]]) -> Any:
        from omnissl.objectives._global_stats import global_log
        from omnissl.core.types import ObjectiveOutput
        mask_loss, reconstruction, h = self.vime.losses(*pair)
        return ObjectiveOutput(loss=mask_loss + 2.0 * reconstruction, embeddings=h,
                               logs={"mask_bce": global_log(mask_loss), "reconstruction": global_log(reconstruction)})


def _vime() -> tuple[nn.Module, Callable[[slice], Any]]:
    def views(rows: slice) -> Any:
        clean, corrupted = _table(6, rows), _table(6, rows)
        keep = _rows(8, 4)[rows] > 0  # about half the numeric cells corrupted, a fixed categorical column
        corrupted["numeric"] = torch.where(keep, clean["numeric"], _rows(7, 4)[rows])
        corrupted["categorical"] = torch.stack([clean["categorical"][:, 0], _table(9, rows)["categorical"][:, 1]], 1)
        return clean, corrupted
    return _VimeFixedDraws(), views


def _ts_tcc() -> tuple[nn.Module, Callable[[slice], Any]]:
    from omnissl_timeseries.tstcc import build_ts_tcc
    objective = build_ts_tcc(encoder=RowEncoder(), timesteps=2, context_dim=8, context_depth=1, heads=2,
                             projection_dim=8)
    return objective, lambda rows: ViewSet(global_views=[_rows(10, SEQ, FEATURES)[rows]],
                                           local_views=[_rows(11, SEQ, FEATURES)[rows]])


def _graph(kind: str, **params: Any) -> Callable[[], tuple[nn.Module, Callable[[slice], Any]]]:
    def make() -> tuple[nn.Module, Callable[[slice], Any]]:
        import omnissl_graph  # noqa: F401 - registers graphcl / grace
        return _single(kind, **params)()
    return make


CASES: dict[str, Callable[[], tuple[nn.Module, Callable[[slice], Any]]]] = {
    "simclr": _single("simclr", hidden_dim=16, projection_dim=8),
    "simcse_info_nce": _single("simcse", temperature=0.1),
    "simcse_nt_xent": _single("simcse", temperature=0.1, loss="nt_xent"),
    "moco_v2": _single("moco_v2", queue_size=24, hidden_dim=16, projection_dim=8),
    "moco_v2_symmetric": _single("moco_v2", queue_size=20, hidden_dim=16, projection_dim=8, symmetric=True),
    "moco_v3": _single("moco_v3", hidden_dim=16, projection_dim=8, predictor_hidden_dim=16),
    "byol": _single("byol", hidden_dim=16, projection_dim=8),
    "simsiam": _single("simsiam", projection_dim=8, predictor_hidden_dim=4),
    "clip": _paired("clip"),
    "siglip": _paired("siglip"),
    "scarf": _scarf,
    "vime": _vime,
    "graphcl": _graph("graphcl"),
    "graphcl_nt_xent": _graph("graphcl", loss="nt_xent"),
    "grace": _graph("grace", projection_dim=8),
    "ts_tcc": _ts_tcc,
}


# Ranks holding 3 and 5 rows (a short last batch): per-sample losses must weigh rows, not ranks, equally.
UNEVEN = ("simclr", "moco_v2_symmetric", "byol", "simsiam", "vime", "clip")
SPLITS = {"even": (slice(0, ROWS // 2), slice(ROWS // 2, ROWS)), "uneven": (slice(0, 3), slice(3, ROWS))}
RUNS = [(name, "even") for name in CASES] + [(name, "uneven") for name in UNEVEN]


def _step(name: str, rows: slice, *, draw_seed: int = 1) -> dict[str, Any]:
    """Build the case from seed 0, run one training forward/backward on ``rows``, return loss, grads and logs."""
    import omnissl.objectives.builtin  # noqa: F401 - registers the core objectives
    torch.manual_seed(0)
    objective, views = CASES[name]()
    objective = convert_sync_batchnorm(objective).train()
    # Rank 1 draws another TS-TCC step t than rank 0 (seed 2 vs 1): the objective must use rank 0's, as one process.
    torch.manual_seed(draw_seed)
    output = objective(views(rows))
    output.loss.backward()
    grads = {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in objective.named_parameters()
             if p.requires_grad}
    queue = getattr(objective, "queue", None)
    return {"loss": output.loss.detach(), "grads": grads, "queue": None if queue is None else queue.clone(),
            "logs": {k: float(v) for k, v in output.logs.items()}}


def _worker(rank: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    results = {}
    for name, split in RUNS:
        result = _step(name, SPLITS[split][rank], draw_seed=1 + rank)
        for grad in result["grads"].values():  # what DDP does to gradients
            dist.all_reduce(grad)
            grad /= WORLD
        loss = result["loss"].clone()
        dist.all_reduce(loss)
        result["mean_loss"] = loss / WORLD
        results[name, split] = result
    torch.save(results, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("global_batch")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, str(out)), nprocs=WORLD, join=True)
    return [torch.load(Path(out) / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _close(got: Tensor, want: Tensor, *, atol: float = 1e-9) -> bool:
    """Within 1e-5 relative, as a whole tensor: elementwise ratios of near-zero entries are float noise."""
    return bool((got.double() - want.double()).norm() <= 1e-5 * want.double().norm() + atol)


def _flat(grads: dict[str, Tensor]) -> Tensor:
    return torch.cat([g.reshape(-1) for g in grads.values()])


@pytest.mark.parametrize(("name", "split"), RUNS)
def test_two_ranks_match_one_process_on_the_global_batch(name: str, split: str, two_ranks: list[dict[str, Any]]) -> None:
    single = _step(name, slice(0, ROWS))
    assert any(g.abs().sum() > 0 for g in single["grads"].values()), "a case without gradients checks nothing"
    for result in two_ranks:
        ranked = result[name, split]
        assert _close(ranked["mean_loss"], single["loss"]), (name, float(ranked["mean_loss"]), float(single["loss"]))
        assert ranked["grads"].keys() == single["grads"].keys()
        assert _close(_flat(ranked["grads"]), _flat(single["grads"])), name
        for key, want in single["grads"].items():  # a bias before BatchNorm has a true gradient of 0 (± 1e-8 noise)
            assert _close(ranked["grads"][key], want, atol=1e-6), (name, key, ranked["grads"][key], want)
        for key, want in single["logs"].items():  # every rank logs the global value
            assert abs(ranked["logs"][key] - want) <= 1e-5 * abs(want) + 1e-6, (name, key, ranked["logs"][key], want)
        if single["queue"] is not None:  # MoCo v2: every rank enqueued all ranks' keys, in the global order
            assert _close(ranked["queue"], single["queue"])


def test_the_check_catches_rank_local_negatives(two_ranks: list[dict[str, Any]]) -> None:
    """The comparison is sharp: the per-rank SimCLR loss (negatives from one rank, as before) is not the global one."""
    from omnissl.objectives.contrastive import nt_xent
    z1, z2 = _rows(1, 8), _rows(2, 8)
    local = (nt_xent(z1[:4], z2[:4], temperature=0.5) + nt_xent(z1[4:], z2[4:], temperature=0.5)) / 2
    assert not _close(local, nt_xent(z1, z2, temperature=0.5))
    assert not _close(two_ranks[0]["simclr", "even"]["mean_loss"], local)


def test_one_process_losses_are_bitwise_the_former_local_formulas() -> None:
    """Outside torch.distributed the gathers and shares are identities: the exact former expressions, bit for bit."""
    from torch.nn import functional as F

    from omnissl.objectives.byol import byol_loss
    from omnissl.objectives.contrastive import info_nce, nt_xent
    from omnissl.objectives.simsiam import negative_cosine
    assert not dist.is_initialized()
    z1, z2, queue = _rows(1, 8), _rows(2, 8), _rows(3, 8)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / 0.3).fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(ROWS, 2 * ROWS), torch.arange(0, ROWS)])
    assert torch.equal(nt_xent(z1, z2, temperature=0.3), F.cross_entropy(logits, targets))
    q, k = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    former = F.cross_entropy(torch.cat([q @ k.T, q @ F.normalize(queue, dim=1).T], 1) / 0.3, torch.arange(ROWS))
    assert torch.equal(info_nce(z1, z2, queue, temperature=0.3), former)
    assert torch.equal(byol_loss(z1, z2), (2 - 2 * (q * k).sum(dim=1)).mean())
    assert torch.equal(negative_cosine(z1, z2), -F.cosine_similarity(z1, z2, dim=1).mean())
