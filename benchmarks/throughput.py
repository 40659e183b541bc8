"""SimCLR training throughput: the full loop (data + on-device augmentation + step) against a bare
forward+backward+optimizer step on pre-made tensors, side by side in one process, as a ratio.

    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/throughput.py [--steps 4] [--out PATH]

Writes JSON to a new timestamped file, benchmarks/results/throughput-YYYYMMDD-HHMMSS.json, unless --out names one;
it never replaces an existing file without --overwrite, so a trial run cannot clobber the committed
benchmarks/results/throughput.json (refresh that one on purpose: --out benchmarks/results/throughput.json --overwrite).
Target: loop/bare ≥ 0.9 for every encoder. Also times the recipe default's bare step with contiguous against
channels-last conv weights (``train.channels_last``), as a ratio.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.train.optim import build_optimizer
from omnissl.train.runner import Trainer, place_for_training, read_metrics
from omnissl.core.types import ViewSet

ROOT = Path(__file__).resolve().parents[1]
PAPER_LAYOUT = ["augment.global.ops.0.size=32", "train.channels_last=false"]
ENCODERS = {
    "resnet18_cifar_stem": ["encoder.name=resnet18", "encoder.width=64", "encoder.cifar_stem=true", *PAPER_LAYOUT],
    "resnet10_w32": ["encoder.width=32", *PAPER_LAYOUT],
    "resnet10_w16, 24px crops, channels-last (recipe default)": [],
}


def loop_rate(overrides: list[str], steps: int, root: str | None) -> float:
    recipe = load_recipe(ROOT / "recipes/image/simclr.yaml", [
        *overrides, f"train.steps={steps + 1}", "train.log_every=1", "train.knn_every=0", "train.checkpoint_every=0",
        "train.max_minutes=null", "train.batch_size=256"])
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(assemble(recipe, root=root), Path(tmp) / "run").fit()
        rates = [r["samples_per_s"] for r in read_metrics(Path(tmp) / "run") if "samples_per_s" in r]
    return statistics.median(rates[1:])  # the first step pays one-off allocation costs


def bare_rate(overrides: list[str], steps: int, root: str | None) -> float:
    recipe = load_recipe(ROOT / "recipes/image/simclr.yaml", [*overrides, "train.batch_size=256"])
    assembled = assemble(recipe, synthetic=16)
    objective = place_for_training(assembled.objective, recipe.train, torch.device("cpu"))
    optimizer = build_optimizer(objective, recipe.train)
    size = recipe.augment.global_views.ops[0].model_dump()["size"]  # the crop the loop trains on
    views = ViewSet(global_views=[torch.rand(256, 3, size, size), torch.rand(256, 3, size, size)])
    times = []
    for _ in range(steps + 1):
        tick = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        objective(views).loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - tick)
    return 256 / statistics.median(times[1:])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--out", default=None,
                        help="JSON to write (default: a new timestamped benchmarks/results/throughput-*.json)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return parser


def output_path(*, out: str | None, overwrite: bool, now: datetime | None = None) -> Path:
    """Where to write: a fresh timestamped file by default, because the committed results are the README's numbers
    and a quick trial on a loaded machine must not silently replace them."""
    if out is None:
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
        path = ROOT / "benchmarks" / "results" / f"throughput-{stamp}.json"
    else:
        path = Path(out)
    if path.exists() and not overwrite:
        raise SystemExit(f"throughput.py: {path} exists; pass --overwrite to replace it or choose another --out")
    return path


def main() -> None:
    args = build_parser().parse_args()
    out = output_path(out=args.out, overwrite=args.overwrite)  # checked before minutes of measuring, not after
    results = {"machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads", "batch_size": 256,
               "image_size": "32 (24 for the recipe default crops)", "objective": "simclr", "steps_timed": args.steps, "encoders": {}}
    for name, overrides in ENCODERS.items():
        # Alternate the two measurements so load from other processes affects both alike.
        bare = bare_rate(overrides, args.steps, args.data_root)
        loop = loop_rate(overrides, args.steps, args.data_root)
        results["encoders"][name] = {"loop_images_per_s": round(loop, 1), "bare_step_images_per_s": round(bare, 1),
                                     "loop_over_bare": round(loop / bare, 3)}
        print(name, results["encoders"][name], flush=True)
    contiguous = bare_rate(["train.channels_last=false"], args.steps, args.data_root)
    channels_last = bare_rate([], args.steps, args.data_root)
    results["recipe_default_bare_step"] = {"contiguous_images_per_s": round(contiguous, 1),
                                           "channels_last_images_per_s": round(channels_last, 1),
                                           "channels_last_over_contiguous": round(channels_last / contiguous, 3)}
    print(results["recipe_default_bare_step"], flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
