"""omnissl.nn.sync_batchnorm: BatchNorm over the global batch on gloo, bit-identical BatchNorm in one process."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from omnissl.nn.sync_batchnorm import SyncBatchNorm, convert_sync_batchnorm

# name → (BatchNorm factory, global input shape, rows per rank): uneven rows check the count-weighted combination.
CASES = {
    "bn1d": (lambda: nn.BatchNorm1d(3), (8, 3), (4, 4)),
    "bn1d_seq": (lambda: nn.BatchNorm1d(3, momentum=None), (6, 3, 5), (3, 3)),
    "bn2d": (lambda: nn.BatchNorm2d(2), (4, 2, 3, 3), (2, 2)),
    "bn3d_no_affine": (lambda: nn.BatchNorm3d(2, affine=False), (4, 2, 2, 2, 2), (2, 2)),
    "bn1d_uneven_offset": (lambda: nn.BatchNorm1d(4), (8, 4), (3, 5)),
}
STEPS = 2


def _init_bn(bn: nn.Module, seed: int) -> nn.Module:
    """Non-trivial affine parameters so their gradients are checked, not just ones and zeros."""
    generator = torch.Generator().manual_seed(seed)
    if getattr(bn, "affine", False):
        with torch.no_grad():
            bn.weight.copy_(1 + torch.randn(bn.weight.shape, generator=generator) * 0.3)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=generator) * 0.3)
    return bn


def _case_data(name: str, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Global input (with a large offset for one case: the variance must not cancel) and loss weights."""
    _, shape, _ = CASES[name]
    generator = torch.Generator().manual_seed(1000 * step + len(name))
    x = torch.randn(shape, generator=generator) * 2 + (8.0 if "offset" in name else 0.5)
    weights = torch.randn(shape, generator=generator)
    return x, weights


def _loss(out: torch.Tensor, weights: torch.Tensor, global_rows: int) -> torch.Tensor:
    """The rank's share of the global per-row mean: the mean over ranks equals the single-process loss."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    return (out * weights).sum() * world / global_rows


def _single(name: str) -> dict[str, object]:
    factory, shape, _ = CASES[name]
    bn = _init_bn(factory(), seed=7)
    results: dict[str, object] = {}
    for step in range(STEPS):
        x, weights = _case_data(name, step)
        x.requires_grad_(True)
        bn.zero_grad()
        out = bn(x)
        _loss(out, weights, shape[0]).backward()
        results[step] = {"out": out.detach(), "x_grad": x.grad,
                         "param_grads": {k: p.grad.clone() for k, p in bn.named_parameters()},
                         "state": {k: v.clone() for k, v in bn.state_dict().items()}}
    return results


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = {}
        for name, (factory, shape, rows) in CASES.items():
            bn = convert_sync_batchnorm(_init_bn(factory(), seed=7))
            start, stop = sum(rows[:rank]), sum(rows[:rank + 1])
            per_step = {}
            for step in range(STEPS):
                x, weights = _case_data(name, step)
                local = x[start:stop].clone().requires_grad_(True)
                bn.zero_grad()
                out = bn(local)
                _loss(out, weights[start:stop], shape[0]).backward()
                grads = {k: p.grad.clone() for k, p in bn.named_parameters()}
                for grad in grads.values():  # what DDP does: the mean over ranks
                    dist.all_reduce(grad)
                    grad /= world
                per_step[step] = {"out": out.detach(), "x_grad": local.grad / world, "param_grads": grads,
                                  "state": {k: v.clone() for k, v in bn.state_dict().items()}}
            bn.eval()
            x, _ = _case_data(name, STEPS)
            per_step["eval"] = bn(x[start:stop]).detach()
            results[name] = per_step
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def distributed_results(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("syncbn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(2, port, str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    error = (actual - expected).norm().item()
    assert error <= 1e-6 * max(expected.norm().item(), 1e-12), f"{what}: |Δ|={error:.3g}, |ref|={expected.norm():.3g}"


@pytest.mark.parametrize("name", list(CASES))
def test_two_gloo_ranks_match_batchnorm_on_the_global_batch(name: str, distributed_results: list[dict]) -> None:
    reference = _single(name)
    _, _, rows = CASES[name]
    for rank, results in enumerate(distributed_results):
        start, stop = sum(rows[:rank]), sum(rows[:rank + 1])
        for step in range(STEPS):
            got, ref = results[name][step], reference[step]
            _close(got["out"], ref["out"][start:stop], f"{name} rank {rank} step {step} output")
            _close(got["x_grad"], ref["x_grad"][start:stop], f"{name} rank {rank} step {step} input grad")
            assert set(got["param_grads"]) == set(ref["param_grads"])
            for key, grad in ref["param_grads"].items():
                _close(got["param_grads"][key], grad, f"{name} rank {rank} step {step} grad {key}")
            assert list(got["state"]) == list(ref["state"])
            for key, value in ref["state"].items():
                if value.is_floating_point():
                    _close(got["state"][key], value, f"{name} rank {rank} step {step} {key}")
                else:
                    assert torch.equal(got["state"][key], value), key
        # Eval mode under DDP uses the (synced) running statistics, exactly as a single process does.
        factory, _, _ = CASES[name]
        bn = _init_bn(factory(), seed=7)
        bn.load_state_dict(reference[STEPS - 1]["state"])
        x, _ = _case_data(name, STEPS)
        _close(results[name]["eval"], bn.eval()(x)[start:stop], f"{name} rank {rank} eval output")


@pytest.mark.parametrize("name", list(CASES))
def test_single_process_is_bit_identical_to_batchnorm(name: str) -> None:
    factory, shape, _ = CASES[name]
    plain = _init_bn(factory(), seed=3)
    synced = convert_sync_batchnorm(copy.deepcopy(plain))
    assert isinstance(synced, SyncBatchNorm)
    for step in range(STEPS):
        x, weights = _case_data(name, step)
        xs = [x.clone().requires_grad_(True) for _ in range(2)]
        outs = [plain(xs[0]), synced(xs[1])]
        for out in outs:
            (out * weights).sum().backward()
        assert torch.equal(outs[0], outs[1]) and torch.equal(xs[0].grad, xs[1].grad)
        for (key, p), q in zip(plain.named_parameters(), synced.parameters()):
            assert torch.equal(p.grad, q.grad), key
    for key, value in plain.state_dict().items():
        assert torch.equal(value, synced.state_dict()[key]), key
    plain.eval(), synced.eval()
    x, _ = _case_data(name, STEPS)
    assert torch.equal(plain(x), synced(x))


def _model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 4),
                         nn.Sequential(nn.BatchNorm1d(4, affine=False), nn.ReLU()))


def test_checkpoints_of_converted_and_plain_models_are_interchangeable() -> None:
    torch.manual_seed(0)
    plain = _model()
    plain(torch.randn(6, 1, 4, 4))  # running statistics move away from their initial values
    converted = convert_sync_batchnorm(copy.deepcopy(plain))
    assert sum(isinstance(m, SyncBatchNorm) for m in converted.modules()) == 2
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in converted.modules())
    assert list(plain.state_dict()) == list(converted.state_dict())
    fresh_plain, fresh_converted = _model(), convert_sync_batchnorm(_model())
    fresh_plain.load_state_dict(converted.state_dict(), strict=True)
    fresh_converted.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(5, 1, 4, 4)
    for model in (plain, converted, fresh_plain, fresh_converted):
        model.eval()
    assert torch.equal(plain(x), fresh_converted(x)) and torch.equal(converted(x), fresh_plain(x))


def test_conversion_shares_parameters_and_keeps_mode_and_input_checks() -> None:
    model = _model().eval()
    bn = model[1]
    optimiser_params = list(model.parameters())
    converted = convert_sync_batchnorm(model)
    assert converted is model  # children replaced in place
    assert converted[1].weight is bn.weight and converted[1].running_mean is bn.running_mean
    assert [id(p) for p in converted.parameters()] == [id(p) for p in optimiser_params]
    assert not converted[1].training
    with pytest.raises(ValueError, match=r"expected 4D input \(got 2D input of shape \(3, 2\)\)"):
        converted[1](torch.randn(3, 2))
    with pytest.raises(ValueError):
        nn.BatchNorm2d(2)(torch.randn(3, 2))  # the plain layer refuses the same input
