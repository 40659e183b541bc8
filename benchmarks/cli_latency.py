"""How long the ``omnissl`` command takes to answer, as a new user meets it: each command N times, each in a fresh
process, wall and CPU seconds and peak memory per run (issue 16 part 4; not a timed test).

    .venv/bin/python benchmarks/cli_latency.py                      # 5 runs each → benchmarks/results/cli_latency-TIME.*
    .venv/bin/python benchmarks/cli_latency.py --runs 3 --out benchmarks/results/cli_latency.json --overwrite

Targets on the reference machine: ``--help`` ≤ 0.3 s, ``list`` ≤ 1.5 s, a schema typo ≤ 1.5 s, ``validate`` of
``recipes/image/simclr.yaml`` ≤ 5 s. Manifests older than the code make ``list`` import plugins (it says so on
stderr); run ``make manifests`` first. Numbers from a loaded machine are provisional: the load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OMNISSL = [str(ROOT / ".venv" / "bin" / "omnissl")]
COMMANDS = {  # label → (arguments, target seconds or None)
    "--help": (["--help"], 0.3),
    "list": (["list"], 1.5),
    "list --params vicreg": (["list", "--params", "vicreg"], 1.5),
    "list recipes": (["list", "recipes"], 1.5),
    "schema typo (validate image/simclr train.stpes=3)": (["validate", "image/simclr", "train.stpes=3"], 1.5),
    "validate recipes/image/simclr.yaml --no-estimate": (["validate", "recipes/image/simclr.yaml", "--no-estimate"],
                                                         5.0),
    "validate recipes/image/simclr.yaml": (["validate", "recipes/image/simclr.yaml"], 5.0),
}


def run_once(argv: list[str]) -> dict[str, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MiB) of one fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024,
            "rc": process.returncode, "stale_manifest": "no current manifest" in stderr}


def measure(runs: int, only: list[str] | None) -> list[dict[str, object]]:
    rows = []
    for label, (args, target) in COMMANDS.items():
        if only and not any(o in label for o in only):
            continue
        samples = [run_once([*OMNISSL, *args]) for _ in range(runs)]
        walls = [s["wall_s"] for s in samples]
        rows.append({"command": f"omnissl {shlex.join(args)}", "label": label, "runs": runs, "target_s": target,
                     "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls),
                     "cpu_s_median": statistics.median(s["cpu_s"] for s in samples),
                     "peak_mib_max": max(s["peak_mib"] for s in samples),
                     "exit_codes": sorted({int(s["rc"]) for s in samples}),
                     "stale_manifest": any(s["stale_manifest"] for s in samples)})
        print(f"{label:<52} median {rows[-1]['median_s']:.2f} s (target {target} s)", flush=True)
    return rows


def markdown(result: dict[str, object]) -> str:
    lines = [f"# CLI latency ({result['when']})", "", f"Command: `{result['command']}`  ", f"uptime before: "
             f"`{result['uptime_before']}`  ", f"uptime after: `{result['uptime_after']}`", "",
             "| command | runs | median s | min s | max s | CPU s | peak MiB | target s | exit |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:  # type: ignore[union-attr]
        lines.append(f"| `{r['command']}` | {r['runs']} | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['max_s']:.2f} "
                     f"| {r['cpu_s_median']:.2f} | {r['peak_mib_max']:.0f} | {r['target_s']} | "
                     f"{','.join(map(str, r['exit_codes']))}{' (stale manifest)' if r['stale_manifest'] else ''} |")
    lines += ["", "Each run is a fresh process (`os.wait4` gives its CPU time and peak RSS). The schema-typo row exits 2 "
              "by design. `validate` without `--no-estimate` includes one timed synthetic step."]
    return "\n".join(lines) + "\n"


def output_path(*, out: str | None, overwrite: bool) -> Path:
    """A fresh timestamped file by default: the committed results must not be replaced by a quick trial."""
    if out is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        path = ROOT / "benchmarks" / "results" / f"cli_latency-{stamp}.json"
    else:
        path = Path(out)
    if path.exists() and not overwrite:
        raise SystemExit(f"cli_latency.py: {path} exists; pass --overwrite to replace it or choose another --out")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", nargs="+", help="only commands whose label contains one of these")
    parser.add_argument("--out", help="JSON path (Markdown beside it); default: a new timestamped file")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()
    out = output_path(out=args.out, overwrite=args.overwrite)
    uptime = lambda: subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()  # noqa: E731
    before = uptime()
    rows = measure(args.runs, args.only)
    result = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "uptime_before": before,
              "uptime_after": uptime(), "command": shlex.join([sys.executable, *sys.argv]), "rows": rows,
              "python": sys.version.split()[0], "cpu_count": os.cpu_count()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
