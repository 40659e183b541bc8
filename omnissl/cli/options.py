"""Option groups several verbs share, and the per-tower report printing ``train`` and ``eval`` share."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_data_root_options(p: argparse.ArgumentParser, *, data_root: bool = True) -> None:
    """``--data-root`` and the opt-in for recipe paths outside it (F15), for every verb that reads data."""
    if data_root:
        p.add_argument("--data-root", help="dataset root (default: $OMNISSL_DATA_DIR or ./data)")
    p.add_argument("--allow-outside-data-root", action="store_true",
                   help="let the recipe read files outside the data root (absolute paths or '..'); "
                        "same as OMNISSL_ALLOW_OUTSIDE_DATA_ROOT=1")


def add_finetune_options(p: argparse.ArgumentParser) -> None:
    """The fine-tuning settings ``eval --finetune`` and ``compare`` share (read by ``finetune_settings``)."""
    p.add_argument("--finetune-blocks", type=int, help="last_blocks mode: how many final blocks train (default 1)")
    p.add_argument("--finetune-epochs", type=float, help="fine-tuning epochs over the train split (default 10)")
    p.add_argument("--finetune-min-steps", type=int, help="at least this many fine-tuning steps (default 100)")
    p.add_argument("--finetune-lr", type=float, help="head learning rate (default 3e-3)")
    p.add_argument("--encoder-lr-scale", type=float, help="encoder lr = head lr × this (default 0.1)")
    p.add_argument("--finetune-seeds", type=int, help="seeds to average (default 1)")


def add_recipe_overrides(p: argparse.ArgumentParser) -> None:
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="recipe overrides, e.g. train.steps=100")


def print_reports(reports: dict[str, object], run_dir: Path) -> None:
    """Print each tower's evaluation table and write them all to ``run_dir/eval.json``."""
    for tower, report in reports.items():
        print(f"\n{report.dataset} — tower '{tower}' — {report.train_samples} train / "  # type: ignore[attr-defined]
              f"{report.test_samples} test samples")  # type: ignore[attr-defined]
        print(report.table())  # type: ignore[attr-defined]
    combined = {tower: report.to_json() for tower, report in reports.items()}  # type: ignore[attr-defined]
    (run_dir / "eval.json").write_text(json.dumps(combined, indent=2), encoding="utf-8")
    print(f"\nwrote {run_dir / 'eval.json'}")
