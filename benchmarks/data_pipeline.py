"""Data beyond memory (issue 19): peak RSS of a SimCLR run streaming N synthetic JPEGs from shards, decode
throughput against torchvision ImageFolder and webdataset's own pipeline, and training from shards vs memory.

    OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/data_pipeline.py \\
        [--sizes 10000 100000 1000000] [--steps 200] [--decode-images 4000] [--train-steps 100] [--out PATH]

Everything is generated in a temp folder (``--work DIR`` to keep it; free disk is checked first: ~3 KB per
sample): ``--distinct`` JPEGs are encoded once and their bytes reused, so a million samples are cheap to write.
Writes JSON + Markdown to benchmarks/results/data_pipeline-YYYYMMDD-HHMMSS.{json,md} unless --out names the JSON
(never replaced without --overwrite). Rows record CPU seconds, steps and ``uptime``: a loaded machine slows the
rates, so read them beside the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
SIMCLR = {
    "name": "bench-shards-simclr", "plugins": ["image"], "seed": 0,
    "encoder": {"name": "resnet10", "width": 8, "cifar_stem": True},
    "augment": {"global": {"count": 2, "ops": [{"name": "random_resized_crop", "size": 32, "scale": [0.3, 1.0]}]}},
    "objective": {"name": "simclr", "temperature": 0.2, "projection_dim": 32, "hidden_dim": 64},
    "train": {"batch_size": 64, "lr": 0.003, "warmup_steps": 5, "log_every": 10, "checkpoint_every": 0,
              "knn_every": 0, "max_minutes": None, "device": "cpu", "num_workers": 1},
}


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def jpegs(count: int, size: int) -> list[bytes]:
    from omnissl_image.shard_codec import synthetic_jpegs

    return synthetic_jpegs(count, size=size, seed=0)


def write_jpeg_shards(out: Path, samples: int, pool: list[bytes], shard_size: int = 1000) -> Path:
    from omnissl.data.shard_writer import write_shards

    def items() -> Any:
        for i in range(samples):
            yield f"s{i:09d}", {"jpg": pool[i % len(pool)], "cls": str(i % 10).encode()}

    write_shards(items(), out=out, shard_size=shard_size, classes=[str(c) for c in range(10)])
    return out


def child_train(recipe_path: str, root: str, run_dir: str) -> None:
    """In a fresh process: train, then print peak RSS (this process + its DataLoader workers) as JSON."""
    from omnissl.core.config import load_recipe
    from omnissl.train.assemble import assemble
    from omnissl.train.runner import Trainer

    recipe = load_recipe(recipe_path)
    cpu, began = time.process_time(), time.time()
    result = Trainer(assemble(recipe, root=Path(root)), Path(run_dir)).fit()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the DataLoader workers, once they have exited
    print(json.dumps({"peak_rss_mb": round(own / 1024, 1), "worker_peak_rss_mb": round(children.ru_maxrss / 1024, 1),
                      "samples_per_s": round(result.samples_per_second, 1), "steps": result.steps_done,
                      "cpu_s": round(time.process_time() - cpu, 1),
                      "worker_cpu_s": round(children.ru_utime + children.ru_stime, 1),
                      **steady_rate(Path(run_dir) / "metrics.jsonl", recipe.train.batch_size, began)}))


def steady_rate(metrics: Path, batch_size: int, began: float) -> dict[str, float]:
    """samples/s between the first and the last logged step (the loop once running: worker start-up, the first
    shard's open and the first batches are left out) and the seconds until that first logged step."""
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if '"loss"' in line]
    if len(rows) < 2:
        return {}
    first, last = rows[0], rows[-1]
    return {"steady_samples_per_s": round((last["step"] - first["step"]) * batch_size / (last["time"] - first["time"]), 1),
            "first_logged_step": first["step"], "seconds_to_first_logged_step": round(first["time"] - began, 2)}


def run_training(work: Path, name: str, data: dict[str, Any], *, steps: int, root: Path,
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    recipe = json.loads(json.dumps(SIMCLR))
    recipe["data"] = data
    recipe["train"]["steps"] = steps
    for key, value in (extra or {}).items():
        recipe[key] = value
    path = work / f"{name}.yaml"
    path.write_text(json.dumps(recipe), encoding="utf-8")  # JSON is YAML
    out = subprocess.run([sys.executable, __file__, "--child", str(path), str(root), str(work / f"run-{name}")],
                         capture_output=True, text=True, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory_rows(work: Path, sizes: list[int], steps: int, pool: list[bytes]) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        shards = write_jpeg_shards(work / f"mem{size}", size, pool)
        data = {"name": "webdataset", "shards": shards.name, "fields": {"image": "jpg"},
                "decode": {"image": {"image_size": 64}}, "examples": 64}
        row = run_training(work, f"mem{size}", data, steps=steps, root=work)
        rows.append({"samples": size, **row, "uptime": uptime()})
        print("memory", rows[-1], flush=True)
        shutil.rmtree(shards)
    base = rows[0]["peak_rss_mb"] + rows[0]["worker_peak_rss_mb"]
    for row in rows:
        row["growth_vs_first"] = round((row["peak_rss_mb"] + row["worker_peak_rss_mb"]) / base - 1, 3)
    return rows


def rate(batches: Any, images: int) -> float:
    seen, start = 0, time.perf_counter()
    for batch in batches:
        seen += len(batch[1] if isinstance(batch, (list, tuple)) else batch["y"])
        if seen >= images:
            break
    return round(seen / (time.perf_counter() - start), 1)


def decode_rows(work: Path, images: int, pool: list[bytes], size: int = 64) -> list[dict[str, Any]]:
    """images/s of decode + resize + centre crop to 64 px, batches of 64, one epoch of ``images``, side by side."""
    import torchvision
    import webdataset as wds
    from torchvision.transforms import v2

    from omnissl.core.config import Component
    from omnissl.core.instantiate import build_component
    from omnissl.core.registry import DATASETS, load_plugins
    from omnissl.data.tensors import training_loader

    load_plugins()
    shards = write_jpeg_shards(work / "decode", images, pool, shard_size=max(images // 8, 1))
    tree = work / "tree"
    for i in range(images):
        path = tree / str(i % 10) / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pool[i % len(pool)])
    crop = v2.Compose([v2.PILToTensor(), v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    rows = []
    for workers in (1, 2):
        folder = torchvision.datasets.ImageFolder(str(tree), transform=crop)
        tv = torch.utils.data.DataLoader(folder, batch_size=64, shuffle=True, num_workers=workers)
        pipeline = (wds.WebDataset(sorted(str(p) for p in shards.glob("*.tar")), shardshuffle=False,
                                   nodesplitter=wds.split_by_node, workersplitter=wds.split_by_worker)
                    .shuffle(1000).decode("pil").to_tuple("jpg", "cls").map_tuple(crop, int).batched(64))
        wd = wds.WebLoader(pipeline, batch_size=None, num_workers=workers)
        bundle = build_component(DATASETS, Component(name="webdataset", shards=str(shards.name),
                                                     fields={"image": "jpg"}, examples=64,
                                                     decode={"image": {"image_size": size}}),
                                 "data", {"data_root": work, "seed": 0})
        ours = training_loader(bundle.train, bundle, batch_size=64, seed=0, start_batch=0, num_workers=workers)
        cpu = time.process_time()
        row = {"workers": workers, "torchvision_imagefolder": rate(tv, images), "webdataset_minimal": rate(wd, images),
               "omnissl_webdataset": rate(ours, images)}
        row["ratio_vs_faster"] = round(row["omnissl_webdataset"] / max(row["torchvision_imagefolder"],
                                                                       row["webdataset_minimal"]), 3)
        rows.append({**row, "images": images, "cpu_s_main": round(time.process_time() - cpu, 1), "uptime": uptime()})
        print("decode", rows[-1], flush=True)
    return rows


def shards_vs_memory(work: Path, steps: int, data_root: Path, *, repeats: int = 1) -> dict[str, Any]:
    """The CIFAR-10 recipe's data both ways (10k train images): loop images/s from memory and from PNG shards."""
    from omnissl.cli.main import main

    if main(["shard", "cifar10", "--data-root", str(data_root), "--out", str(work / "cifar10"),
             "--shard-size", "1000"]) != 0:
        raise SystemExit("omnissl shard cifar10 failed")
    from omnissl.core.safe_yaml import read_yaml_file

    spec = read_yaml_file(ROOT / "recipes" / "image" / "simclr.yaml")
    extra = {"encoder": spec["encoder"], "augment": spec["augment"], "objective": spec["objective"]}
    data = {"name": "webdataset", "shards": "cifar10/train", "fields": {"image": "png"},
            "decode": {"image": {"image_size": 32}}}
    # Arms alternate (memory, shards, memory, …) so a pair runs under the same machine load; the ratio reported is
    # the (lower) median of the per-pair ratios, and each pair is kept with its CPU seconds and uptime.
    pairs = []
    for repeat in range(repeats):
        memory = run_training(work, f"cifar-memory{repeat}", {"name": "cifar10"}, steps=steps, root=data_root,
                              extra=extra)
        shards = run_training(work, f"cifar-shards{repeat}", data, steps=steps, root=work, extra=extra)
        pairs.append({"memory": memory, "shards": shards, "uptime": uptime(),
                      "ratio": round(shards["samples_per_s"] / memory["samples_per_s"], 3),
                      "steady_ratio": round(shards["steady_samples_per_s"] / memory["steady_samples_per_s"], 3)})
        print("shards vs memory", pairs[-1], flush=True)
    middle = sorted(pairs, key=lambda pair: pair["ratio"])[(len(pairs) - 1) // 2]  # lower median: never flatters
    steady = sorted(pairs, key=lambda pair: pair["steady_ratio"])[(len(pairs) - 1) // 2]
    return {"steps": steps, "memory": middle["memory"], "shards": middle["shards"], "uptime": uptime(),
            "ratio": middle["ratio"], "steady_ratio": steady["steady_ratio"], "pairs": pairs}


def markdown(result: dict[str, Any]) -> str:
    lines = [f"# Data pipeline ({result['when']})", "", f"`{result['command']}`", "", "## Peak RSS streaming N samples",
             "", "| samples | main MB | workers MB | growth vs first | samples/s | CPU s |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['samples']} | {r['peak_rss_mb']} | {r['worker_peak_rss_mb']} | {r['growth_vs_first']:+.1%} | "
              f"{r['samples_per_s']} | {r['cpu_s']} |" for r in result["memory"]]
    lines += ["", "## Decode + crop to 64 px, images/s", "",
              "| workers | torchvision ImageFolder | webdataset minimal | omnissl webdataset | ratio vs faster |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['workers']} | {r['torchvision_imagefolder']} | {r['webdataset_minimal']} | "
              f"{r['omnissl_webdataset']} | {r['ratio_vs_faster']} |" for r in result["decode"]]
    sv = result.get("shards_vs_memory")
    if sv:
        lines += ["", "## CIFAR-10 SimCLR loop, 1 worker", "",
                  "| from | samples/s (whole run) | samples/s (first to last logged step) | s to first logged step |",
                  "|---|---|---|---|"]
        lines += [f"| {arm} | {sv[arm]['samples_per_s']} | {sv[arm].get('steady_samples_per_s', '—')} | "
                  f"{sv[arm].get('seconds_to_first_logged_step', '—')} |" for arm in ("memory", "shards")]
        lines += ["", f"ratio {sv['ratio']} over {sv['steps']} steps"
                  + (f"; once running (steady): {sv['steady_ratio']}" if "steady_ratio" in sv else "")]
        if len(sv.get("pairs", [])) > 1:
            ratios = ", ".join(str(pair["ratio"]) for pair in sv["pairs"])
            lines += [f"(median of {len(sv['pairs'])} alternating pairs: {ratios})"]
    return "\n".join(lines + ["", f"uptime at start: {result['uptime']}", ""])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child_train(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--decode-images", type=int, default=4000)
    parser.add_argument("--train-steps", type=int, default=100, help="CIFAR-10 shards-vs-memory steps (0: skip)")
    parser.add_argument("--train-repeats", type=int, default=1, help="memory/shards pairs, alternating (median)")
    parser.add_argument("--distinct", type=int, default=2000)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or ROOT / "benchmarks" / "results" / f"data_pipeline-{stamp}.json"
    if out.exists() and not args.overwrite:
        raise SystemExit(f"{out} exists; pass --overwrite to replace it")
    work = args.work or Path(tempfile.mkdtemp(prefix="omnissl-data-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    need = (max(args.sizes) + args.decode_images * 2) * 3500 + 200 * 2**20
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"{work}: {free / 2**30:.1f} GiB free, this run needs about {need / 2**30:.1f} GiB")
    data_root = Path(os.environ.get("OMNISSL_DATA_DIR", "data"))
    pool = jpegs(args.distinct, 64)
    result: dict[str, Any] = {"when": stamp, "command": " ".join(["benchmarks/data_pipeline.py", *sys.argv[1:]]),
                              "uptime": uptime(), "distinct_jpegs": len(pool),
                              "jpeg_bytes_mean": round(sum(map(len, pool)) / len(pool))}
    result["decode"] = decode_rows(work, args.decode_images, pool)
    result["memory"] = memory_rows(work, args.sizes, args.steps, pool)
    if args.train_steps:
        result["shards_vs_memory"] = shards_vs_memory(work, args.train_steps, data_root, repeats=args.train_repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
