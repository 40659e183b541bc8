"""Issue 20's headline check, for EVERY registered objective (a new one is covered with no new test code).

The rule of :mod:`omnissl.core.collectives`: one fixed global batch of ``2B`` samples and its augmented views, built
once; (a) one process computes the loss and parameter gradients on all ``2B``; (b) two gloo ranks with ``B`` each
compute their losses, which are averaged, and their gradients, which are all-reduced and divided by two, as DDP
does. Both must agree within 1e-5 relative (loss) and ``‖g_ddp − g_single‖ ≤ 1e-5 ‖g_single‖`` (each parameter).

How each objective is built: the first shipped recipe whose ``objective.name`` matches, shrunk through overrides of
any builder parameter named in ``TINY`` (widths, depths, head sizes, queue sizes; dropout set to 0 because the
dropout RNG cannot be split by rows), on ``synthetic=4B`` data (the first 2B training samples), BatchNorm converted by ``convert_sync_batchnorm``.

Randomness inside ``forward`` (masks, crops, negatives) is shared by :func:`split_draws`: every ``torch.rand /
randn / randint / rand_like / randn_like / bernoulli`` draw comes from one fixed generator; a draw whose dim 0 is
the local batch gives rank r rows ``rB:(r+1)B`` of the draw of the global shape, so both setups see the same
numbers per sample. All objectives run in ONE 2-process spawn; the references run in the parent.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from omnissl_graph.dgi import DGI
from omnissl_graph.graphmae import GraphMAE
from torch import nn
from torch_geometric.data import Batch, Data

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.core.registry import ENCODERS, OBJECTIVES, load_plugins
from omnissl.nn.sync_batchnorm import convert_sync_batchnorm
from omnissl.core.types import ViewSet

ROOT = Path(__file__).resolve().parents[2]
B = 3  # rows per rank; odd, so that a non-batch draw is unlikely to be taken for a batch one
WORLD = 2
RTOL = 1e-5
SEED = 1234
TINY: dict[str, Any] = {
    # encoders
    "width": 4, "dim": 16, "depth": 1, "heads": 2, "hidden": 8, "dims": [8], "output_dim": 8, "layers": 2,
    "hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "conv_dim": 16,
    "codevector_dim": 8, "embedding_dim": 4, "dropout": 0.0, "input_dropout": 0.0, "attention_dropout": 0.0,
    # objectives
    "projection_dim": 8, "hidden_dim": 8, "out_dim": 16, "bottleneck_dim": 8, "num_prototypes": 8,
    "queue_size": 12, "expander_dim": 8, "embed_dim": 8, "context_dim": 8, "decoder_dim": 16,
    "decoder_heads": 2, "predictor_hidden_dim": 8, "context_depth": 1, "decoder_depth": 1, "top_k": 1,
}

load_plugins()

# Exact substitute checks. For these objectives the generic set-up here cannot make the two runs see the same
# inputs, for reasons of the set-up, not of the objective: HF dropout inside the text encoder (simcse), Gumbel noise
# inside HF's quantiser (wav2vec2), masking of one shared node-level graph (graphmae), augmented PyG batches whose
# row split does not keep edges with their graphs (graphcl), and float32 round-off in TS-TCC's context transformer at
# these sizes (ts_tcc). Each one is checked with the same criterion (loss, DDP-averaged gradients, within 1e-5
# relative, on 2 gloo ranks against one process on the global batch) by a focused test that controls that randomness
# or data: the mapping says which, and the test below fails if that test stops covering it.
SUBSTITUTES: dict[str, tuple[str, str]] = {
    "simcse": ("objectives/test_global_batch_contrastive.py", "simcse_info_nce"),
    "graphcl": ("objectives/test_global_batch_contrastive.py", "graphcl"),
    "ts_tcc": ("objectives/test_global_batch_contrastive.py", "ts_tcc"),
    "wav2vec2": ("objectives/test_global_batch_statistics.py", "wav2vec2"),
    "graphmae": ("objectives/test_global_batch_statistics.py", "graphmae"),
}
NAMES = OBJECTIVES.names()
GENERIC = [name for name in NAMES if name not in SUBSTITUTES]


# Node-level GraphMAE masks each rank's own nodes inside the one shared graph, so the encoder's input differs from
# one process's masking of all nodes: no row split reproduces it. Its graph-level recipe (batches of whole graphs)
# is the one whose samples are rows, as in tests/objectives/test_global_batch_statistics.py.
PREFERRED: dict[str, str] = {"simclr": "image/simclr_digits.yaml"}  # the first match is the graph recipe


def recipe_for(name: str) -> Path:
    if name in PREFERRED:
        return ROOT / "recipes" / PREFERRED[name]
    for path in sorted((ROOT / "recipes").rglob("*.yaml")):
        if load_recipe(path).objective.name == name:
            return path
    raise AssertionError(f"objective '{name}' has no shipped recipe to build it from")


def tiny_overrides(path: Path) -> list[str]:
    recipe = load_recipe(path)
    overrides = []
    for tower, spec in recipe.tower_specs().items():
        prefix = "encoder" if not recipe.is_paired else f"towers.{tower}.encoder"
        for key in ENCODERS.get(spec.encoder.name).signature.parameters:
            if key in TINY:
                overrides.append(f"{prefix}.{key}={TINY[key]}")
    for key in OBJECTIVES.get(recipe.objective.name).signature.parameters:
        if key in TINY:
            overrides.append(f"objective.{key}={TINY[key]}")
    return overrides


def build(name: str) -> tuple[nn.Module, Any]:
    """The tiny objective (sync BN, no dropout) and the global batch's views, both fixed by the seed."""
    path = recipe_for(name)
    # twice the global batch: a dataset may hold some synthetic samples out as its test split (TU keeps a quarter)
    assembled = assemble(load_recipe(path, tiny_overrides(path)), synthetic=2 * WORLD * B)
    objective = convert_sync_batchnorm(assembled.objective)
    for module in objective.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.p = 0.0
        if isinstance(module, nn.MultiheadAttention):
            module.dropout = 0.0
    bundle = assembled.bundle
    batch = bundle.collate([bundle.train[i] for i in range(WORLD * B)])
    torch.manual_seed(SEED)
    views = assembled.views(batch["x"])  # {tower: ViewSet}; the objective unwraps a single tower
    return objective.train(), views


def take_rows(value: Any, *, start: int, stop: int, total: int) -> Any:
    """Samples ``start:stop`` of a batch structure: tensors (dim 0), dicts, lists/tuples, ViewSet, PyG Batch."""
    if isinstance(value, torch.Tensor):
        return value[start:stop] if value.dim() > 0 and value.shape[0] == total else value
    if isinstance(value, ViewSet):
        return ViewSet(global_views=take_rows(value.global_views, start=start, stop=stop, total=total),
                       local_views=take_rows(value.local_views, start=start, stop=stop, total=total),
                       original=take_rows(value.original, start=start, stop=stop, total=total))
    if isinstance(value, dict):
        return {key: take_rows(item, start=start, stop=stop, total=total) for key, item in value.items()}
    if isinstance(value, Data) and not isinstance(value, Batch):
        return value  # a node-level batch's one shared graph; the node ids beside it are what is split
    if hasattr(value, "num_graphs") and hasattr(value, "index_select"):
        if int(value.num_graphs) != total:
            raise TypeError(f"a graph batch of {value.num_graphs} graphs cannot be split into {total} samples")
        return type(value).from_data_list(value.index_select(list(range(start, stop))))
    if isinstance(value, (list, tuple)):
        if len(value) == total and not any(isinstance(v, (torch.Tensor, dict, ViewSet, list, tuple)) for v in value):
            return type(value)(value[start:stop])  # per-sample items (strings, ids)
        return type(value)(take_rows(item, start=start, stop=stop, total=total) for item in value)
    if value is None or isinstance(value, (int, float, str, bool)):
        return value
    raise TypeError(f"take_rows: cannot split a {type(value).__name__}")


def _shape(args: tuple, kwargs: dict) -> tuple[int, ...]:
    size = kwargs.pop("size", None)
    if size is None:
        size = args[0] if len(args) == 1 and isinstance(args[0], (tuple, list, torch.Size)) else args
    return tuple(int(s) for s in size)


@contextlib.contextmanager
def split_draws(*, local_rows: int, rank: int, world: int) -> Iterator[list[str]]:
    """Patch torch's random draws (see module docstring); yields the list of draws that could not be split."""
    generator = torch.Generator().manual_seed(SEED)
    originals = {name: getattr(torch, name) for name in ("rand", "randn", "randint", "randperm", "bernoulli",
                                                         "rand_like", "randn_like")}
    unsplittable: list[str] = []

    def draw(kind: str, shape: tuple[int, ...], device: Any, dtype: Any, low: int = 0, high: int = 0) -> torch.Tensor:
        batched = len(shape) > 0 and shape[0] == local_rows
        full = (shape[0] * world, *shape[1:]) if batched else shape
        if kind == "randint":
            value = originals["randint"](low, high, full, generator=generator)
        else:
            value = originals[kind](full, generator=generator, dtype=dtype or torch.get_default_dtype())
        if batched:
            value = value[rank * shape[0]:(rank + 1) * shape[0]]
        return value.to(device=device or "cpu", dtype=dtype or value.dtype)

    def rand(*args, **kwargs):
        return draw("rand", _shape(args, kwargs), kwargs.get("device"), kwargs.get("dtype"))

    def randn(*args, **kwargs):
        return draw("randn", _shape(args, kwargs), kwargs.get("device"), kwargs.get("dtype"))

    def randint(*args, **kwargs):
        numbers = [a for a in args if isinstance(a, int)]
        low, high = (0, numbers[0]) if len(numbers) == 1 else (numbers[0], numbers[1])
        size = kwargs.pop("size", None) or next(a for a in args if not isinstance(a, int))
        return draw("randint", tuple(size), kwargs.get("device"), kwargs.get("dtype") or torch.long, low, high)

    def randperm(n, **kwargs):
        if int(n) == local_rows and world > 1:
            unsplittable.append(f"randperm({n})")
        return originals["randperm"](n, generator=generator).to(kwargs.get("device") or "cpu")

    def bernoulli(input, p=None, **kwargs):
        u = draw("rand", tuple(input.shape), input.device, input.dtype if input.is_floating_point() else None)
        return (u < (input if p is None else p)).to(input.dtype)

    def like(kind):
        return lambda t, **kw: draw(kind, tuple(t.shape), kw.get("device", t.device), kw.get("dtype", t.dtype))

    patched = dict(rand=rand, randn=randn, randint=randint, randperm=randperm, bernoulli=bernoulli,
                   rand_like=like("rand"), randn_like=like("randn"))
    for name, function in patched.items():
        setattr(torch, name, function)
    try:
        yield unsplittable
    finally:
        for name, function in originals.items():
            setattr(torch, name, function)


def _first_graph(views: Any) -> Any:
    if isinstance(views, dict) and len(views) == 1:  # one tower's views, as Assembled.views gives them
        views = next(iter(views.values()))
    view = views.global_views[0] if isinstance(views, ViewSet) and views.global_views else getattr(views, "original", None)
    if isinstance(view, dict):
        view = view.get("graph")
    return view if isinstance(view, Data) else None


@contextlib.contextmanager
def graph_samplers(full_views: Any, *, rank: int, world: int) -> Iterator[None]:
    """Graph objectives that draw over nodes, not rows: the draw is made over the global batch's nodes in both
    set-ups and each rank takes its own (as tests/objectives/test_global_batch_statistics.py does)."""
    permutation, corrupt = DGI.__dict__["corrupt_permutation"], GraphMAE.corrupt
    graph = _first_graph(full_views)

    def corrupt_permutation(n: int, *, device: torch.device) -> torch.Tensor:
        nodes = int(graph.num_nodes)  # node level: every rank holds the whole graph, gathered world times
        assert n % nodes == 0, (n, nodes)
        return permutation.__func__(nodes, device=device).repeat(n // nodes)

    def corrupt_nodes(self: GraphMAE, x: torch.Tensor, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        assert isinstance(graph, Batch), "node-level GraphMAE cannot be split by rows (see PREFERRED)"
        per_rank = int(graph.num_graphs) // world
        start, stop = int(graph.ptr[rank * per_rank]), int(graph.ptr[(rank + 1) * per_rank])
        out, masked = corrupt(self, graph.x.float().to(x.device), torch.arange(int(graph.num_nodes)))
        mine = (masked >= start) & (masked < stop)
        return out[start:stop].to(x.dtype), masked[mine] - start

    DGI.corrupt_permutation = staticmethod(corrupt_permutation)  # type: ignore[method-assign]
    GraphMAE.corrupt = corrupt_nodes  # type: ignore[method-assign]
    try:
        yield
    finally:
        DGI.corrupt_permutation, GraphMAE.corrupt = permutation, corrupt  # type: ignore[method-assign]


def loss_and_grads(objective: nn.Module, views: Any, *, rank: int, world: int, full_views: Any) -> dict[str, Any]:
    with split_draws(local_rows=B if world > 1 else WORLD * B, rank=rank, world=world) as unsplittable, \
            graph_samplers(full_views, rank=rank, world=world):
        output = objective(views)
        output.loss.backward()
    grads = {key: p.grad.detach().clone() for key, p in objective.named_parameters() if p.grad is not None}
    logs = {key: float(value) for key, value in output.logs.items()
            if not isinstance(value, torch.Tensor) or value.numel() == 1}
    return {"loss": output.loss.detach().clone(), "grads": grads, "logs": logs, "unsplittable": unsplittable}


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    load_plugins()
    try:
        for name in GENERIC:
            try:
                objective, views = build(name)
                objective.load_state_dict(torch.load(Path(out_dir) / f"{name}.state.pt", weights_only=True))
                local = take_rows(views, start=rank * B, stop=(rank + 1) * B, total=world * B)
                result = loss_and_grads(objective, local, rank=rank, world=world, full_views=views)
                dist.all_reduce(result["loss"])
                result["loss"] /= world
                for grad in result["grads"].values():  # DDP's gradient averaging
                    dist.all_reduce(grad)
                    grad /= world
            except Exception:  # recorded per objective, so one failure does not hide the others
                result = {"error": traceback.format_exc(limit=6)}
            torch.save(result, Path(out_dir) / f"{name}.rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """``{name: {"single": ..., "ddp": [rank0, rank1]}}`` for every registered objective."""
    out = tmp_path_factory.mktemp("ddp_objectives")
    single: dict[str, Any] = {}
    for name in GENERIC:
        try:
            objective, views = build(name)
            torch.save(objective.state_dict(), out / f"{name}.state.pt")
            single[name] = loss_and_grads(objective, views, rank=0, world=1, full_views=views)
        except Exception:
            single[name] = {"error": traceback.format_exc(limit=6)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(WORLD, port, str(out)), nprocs=WORLD, join=True)
    ddp = {name: [torch.load(out / f"{name}.rank{r}.pt", weights_only=False) for r in range(WORLD)]
           for name in GENERIC}
    return {name: {"single": single[name], "ddp": ddp[name]} for name in GENERIC}


def _focused_cases(relative: str) -> list[str]:
    """The objective cases a focused test module parametrises over (its CASES or NAMES), read without running it."""
    import importlib.util

    path = ROOT / "tests" / relative
    spec = importlib.util.spec_from_file_location(f"_focused_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(getattr(module, "CASES", None) or module.NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_two_ranks_give_the_single_process_loss_and_gradients(name: str, request: pytest.FixtureRequest) -> None:
    if name in SUBSTITUTES:
        relative, case = SUBSTITUTES[name]
        assert case in _focused_cases(relative), f"{name}: its substitute check {relative}::{case} is gone"
        return
    runs = request.getfixturevalue("runs")
    single, ddp = runs[name]["single"], runs[name]["ddp"]
    assert "error" not in single, single.get("error")
    for rank, result in enumerate(ddp):
        assert "error" not in result, f"rank {rank}: {result.get('error')}"
        assert not result["unsplittable"], f"draws that cannot be split by rows: {result['unsplittable']}"
        loss, reference = float(result["loss"]), float(single["loss"])
        assert abs(loss - reference) <= RTOL * max(abs(reference), 1e-8), f"loss {loss} vs single {reference}"
        assert set(result["grads"]) == set(single["grads"]), "different parameters received gradients"
        bad = []
        # As in tests/objectives/test_global_batch_statistics.py: 1e-5 relative, each parameter, where a gradient
        # that is float noise around an exact zero (a bias right before BatchNorm or a standardisation) is held
        # to the scale of the whole model gradient's norm instead of its own.
        scale = torch.cat([grad.double().flatten() for grad in single["grads"].values()]).norm().item()
        for key, grad in single["grads"].items():
            error = (result["grads"][key].double() - grad.double()).norm().item()
            norm = grad.double().norm().item()
            if error > RTOL * max(norm, scale) + 1e-9:
                bad.append(f"{key}: |Δ|={error:.3g} |g|={norm:.3g} (whole gradient {scale:.3g})")
        assert not bad, f"rank {rank} gradients differ: " + "; ".join(bad[:6])
