"""GPU check (issue 20 item 5): every recipe's ``gpu`` variant for a few dozen steps under bf16, eager and
``torch.compile``: images (samples) per second, peak GPU memory, loss finite; then, with two or more GPUs, the
loss-equality check on NCCL (one process on 2B samples against two ranks on B each: same loss, same gradients).

    .venv/bin/python benchmarks/gpu_check.py [--steps 30] [--budget-minutes 9] [--out PATH]   # one GPU, ≤ 10 min
    .venv/bin/python benchmarks/gpu_check.py --tiny --out /tmp/gpu_check.json                # CPU, < 1 min

Data is synthetic (``assemble(..., synthetic=N)``): this measures the training step, not the disk, and needs no
dataset on the GPU machine. The eager pass over every recipe runs first and the compiled pass after it, each until
``--budget-minutes`` is spent; a run the budget leaves out is listed with that reason (never dropped silently).
``--tiny`` keeps the code path from rotting on CPU: two small recipes shrunk, fp32, a few steps, compile with the
``aot_eager`` backend on the ViT only (inductor needs minutes of C++ compilation on a small CPU), the equality check on gloo.
Writes JSON to benchmarks/results/gpu_check.json unless --out names another file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe, read_yaml_file
from omnissl.nn.sync_batchnorm import convert_sync_batchnorm
from omnissl.train.runner import Trainer, read_metrics
from omnissl.core.types import ViewSet

ROOT = Path(__file__).resolve().parents[1]
TINY_RECIPES = {  # recipe → overrides that shrink its gpu variant to a CPU-second step
    "image/simclr.yaml": ["encoder.name=resnet10", "encoder.width=4", "objective.hidden_dim=16",
                          "objective.projection_dim=8", "train.batch_size=8"],
    "image/mae.yaml": ["encoder.dim=16", "encoder.depth=1", "encoder.heads=2", "objective.decoder_dim=16",
                       "objective.decoder_depth=1", "objective.decoder_heads=2", "train.batch_size=8"],
}
# Objectives whose forward draws no random numbers, so two ranks can see exactly the single process's batch.
EQUALITY_RECIPES = ["image/simclr.yaml", "image/barlow_twins.yaml", "image/vicreg.yaml"]
RUN_ONLY = ["train.log_every=1", "train.knn_every=0", "train.checkpoint_every=0", "train.checkpoint_minutes=null",
            "train.max_minutes=null", "train.warmup_steps=0"]


def gpu_recipes() -> list[str]:
    """Every shipped recipe with a ``gpu`` variant, relative to ``recipes/``."""
    found = []
    for path in sorted((ROOT / "recipes").rglob("*.yaml")):
        raw = read_yaml_file(path)
        if isinstance(raw, dict) and "gpu" in (raw.get("variants") or {}):
            found.append(str(path.relative_to(ROOT / "recipes")))
    return found


def _recipe(name: str, *, tiny: bool, extra: list[str]) -> Any:
    return load_recipe(ROOT / "recipes" / name, [*(TINY_RECIPES.get(name, []) if tiny else []), *extra],
                       variant="gpu")


def run_one(name: str, *, compile_: bool, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """A short Trainer run of the recipe's gpu variant on synthetic data; rates skip the first steps (warm-up and
    compilation), whose time is reported on its own."""
    precision = "fp32" if args.tiny or device.type != "cuda" else "bf16"
    extra = [*RUN_ONLY, f"train.steps={args.steps}", f"train.precision={precision}", f"train.device={device}",
             f"train.compile={str(compile_).lower()}", f"train.compile_backend={args.compile_backend}"]
    recipe = _recipe(name, tiny=args.tiny, extra=extra)
    batch = recipe.train.batch_size * recipe.train.accumulate
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(assemble(recipe, synthetic=max(2 * batch, 64)), Path(tmp) / "run").fit()
        records = [r for r in read_metrics(Path(tmp) / "run") if "loss" in r]
    rates = [r["samples_per_s"] for r in records]
    losses = [r["loss"] for r in records]
    warm = rates[min(3, len(rates) - 1):]
    return {"recipe": name, "compile": compile_, "precision": precision, "batch": batch, "steps": len(records),
            "samples_per_s": statistics.median(warm), "first_step_s": batch / max(rates[0], 1e-9),
            "peak_memory_mib": (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None),
            "loss_first": losses[0], "loss_last": losses[-1],
            "loss_finite": all(math.isfinite(loss) for loss in losses), "seconds": time.perf_counter() - began}


def _equality_setup(name: str, *, tiny: bool, rows: int) -> tuple[torch.nn.Module, ViewSet]:
    """The objective (sync BN, no dropout) and its views of one fixed global batch, the same in every process."""
    recipe = _recipe(name, tiny=tiny, extra=["train.precision=fp32"])
    assembled = assemble(recipe, synthetic=rows)
    objective = convert_sync_batchnorm(assembled.objective)
    for module in objective.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
    batch = assembled.bundle.collate([assembled.bundle.train[i] for i in range(rows)])
    torch.manual_seed(1234)
    return objective.train(), assembled.policies["main"](batch["x"])


def _rows(views: ViewSet, start: int, stop: int) -> ViewSet:
    return ViewSet(global_views=[v[start:stop] for v in views.global_views],
                   local_views=[v[start:stop] for v in views.local_views or []] or None)


def _loss_and_grads(objective: torch.nn.Module, views: ViewSet, device: torch.device) -> dict[str, Any]:
    objective = objective.to(device)
    views = ViewSet(global_views=[v.to(device) for v in views.global_views],
                    local_views=[v.to(device) for v in views.local_views] if views.local_views else None)
    loss = objective(views).loss
    loss.backward()
    loss = loss.detach()
    grads = {k: p.grad.detach() for k, p in objective.named_parameters() if p.grad is not None}
    if dist.is_initialized():  # what DDP does: the mean of the ranks' gradients, and the mean of their losses
        for grad in grads.values():
            dist.all_reduce(grad)
            grad /= dist.get_world_size()
        dist.all_reduce(loss := loss.clone())
        loss /= dist.get_world_size()
    return {"loss": float(loss), "grads": {k: g.cpu() for k, g in grads.items()}}


def _equality_worker(rank: int, world: int, port: int, out: str, names: list[str], tiny: bool, rows: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    cuda = torch.cuda.is_available() and torch.cuda.device_count() >= world
    device = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    per = rows // world
    for name in names:
        objective, views = _equality_setup(name, tiny=tiny, rows=rows)
        result = _loss_and_grads(objective, _rows(views, rank * per, (rank + 1) * per), device)
        if rank == 0:
            torch.save(result, Path(out) / f"{name.replace('/', '_')}.pt")
    dist.destroy_process_group()


def equality_check(names: list[str], *, tiny: bool, device: torch.device) -> dict[str, Any]:
    """One process on ``2B`` rows against two ranks on ``B`` each (NCCL on GPUs, gloo on CPU)."""
    world, rows = 2, 8
    if device.type == "cuda" and torch.cuda.device_count() < world:
        return {"ran": False, "why": f"{torch.cuda.device_count()} GPU: the NCCL check needs {world}"}
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 on both sides
    results: dict[str, Any] = {"ran": True, "backend": "nccl" if device.type == "cuda" else "gloo", "recipes": {}}
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        mp.spawn(_equality_worker, args=(world, port, tmp, names, tiny, rows), nprocs=world, join=True)
        for name in names:
            single = _loss_and_grads(*_equality_setup(name, tiny=tiny, rows=rows), device)
            ranks = torch.load(Path(tmp) / f"{name.replace('/', '_')}.pt")
            grad_error = max(float((ranks["grads"][k] - g).norm() / g.norm().clamp_min(1e-12))
                             for k, g in single["grads"].items())
            loss_error = abs(ranks["loss"] - single["loss"]) / max(abs(single["loss"]), 1e-12)
            results["recipes"][name] = {"loss_single": single["loss"], "loss_ranks": ranks["loss"],
                                        "loss_rel_error": loss_error, "max_grad_rel_error": grad_error,
                                        "equal_within_1e-5": loss_error <= 1e-5 and grad_error <= 1e-5}
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="CPU-sized: two shrunk recipes, fp32, a few steps")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 30; --tiny: 4)")
    parser.add_argument("--budget-minutes", type=float, default=9.0, help="stop starting runs after this long")
    parser.add_argument("--compile-backend", default=None, help="default inductor; --tiny: aot_eager")
    parser.add_argument("--recipes", nargs="*", default=None, help="recipe paths under recipes/ (default: all)")
    parser.add_argument("--compile-recipes", nargs="*", default=None,
                        help="recipes of the compiled pass (default: all; --tiny: image/mae.yaml, the ViT)")
    parser.add_argument("--device", default=None, help="default cuda when present, else cpu")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    args.steps = args.steps or (4 if args.tiny else 30)
    args.compile_backend = args.compile_backend or ("aot_eager" if args.tiny else "inductor")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = args.recipes or (list(TINY_RECIPES) if args.tiny else gpu_recipes())
    began = time.perf_counter()
    runs: list[dict[str, Any]] = []
    compiled = args.compile_recipes if args.compile_recipes is not None else (
        ["image/mae.yaml"] if args.tiny else names)
    for compile_, batch in ((False, names), (True, [n for n in names if n in compiled])):
        for name in batch:
            if time.perf_counter() - began > args.budget_minutes * 60:
                runs.append({"recipe": name, "compile": compile_, "skipped": "time budget spent"})
                continue
            try:
                runs.append(run_one(name, compile_=compile_, args=args, device=device))
            except Exception as error:  # noqa: BLE001 — a recipe that fails is a finding of the check, not the end of it
                runs.append({"recipe": name, "compile": compile_, "error": f"{type(error).__name__}: {error}"[:500]})
    equality = equality_check([n for n in EQUALITY_RECIPES if n in names] or names[:1], tiny=args.tiny,
                              device=device)
    report = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or
              "cpu", "gpus": torch.cuda.device_count(), "torch": torch.__version__, "tiny": args.tiny,
              "steps": args.steps, "compile_backend": args.compile_backend, "budget_minutes": args.budget_minutes,
              "seconds": time.perf_counter() - began, "runs": runs,
              "skipped": sum("skipped" in r for r in runs), "failed": sum("error" in r for r in runs),
              "equality": equality}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu_check: {len(runs)} runs ({report['skipped']} skipped, {report['failed']} failed) in "
          f"{report['seconds']:.0f} s → {out}")
    return report


if __name__ == "__main__":
    main()
