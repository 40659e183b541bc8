"""The ``report``, ``compare``, ``embed`` and ``export`` verbs, plus the hooks ``train``/``eval`` call:
the automatic report and the fine-tuning mode of ``eval``. :mod:`omnissl.cli.main` only wires these in."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from omnissl.core.errors import ConfigError


def auto_report(run_dir: Path, *, data_root: str | None = None, embed: bool = True) -> None:
    """Write the run report (``embed=False``: curves and tables only, no model loading); a failure is a warning,
    never a lost run (the checkpoints are already saved)."""
    try:
        from omnissl.report import write_report

        print(f"wrote {write_report(run_dir, data_root=data_root, embed=embed)}")
    except Exception as error:  # noqa: BLE001 - the report is a convenience on top of a finished run
        print(f"omnissl: warning: could not write the report for {run_dir} ({type(error).__name__}: {error}); "
              f"retry with: omnissl report {run_dir}", file=sys.stderr)


def _finetune_settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = {"blocks": args.finetune_blocks, "epochs": args.finetune_epochs, "min_steps": args.finetune_min_steps,
            "lr": args.finetune_lr, "encoder_lr_scale": args.encoder_lr_scale, "seeds": args.finetune_seeds}
    return {k: v for k, v in keys.items() if v is not None}


def finetune_eval(assembled: Any, args: argparse.Namespace, out_dir: Path) -> None:
    """``omnissl eval --finetune MODE``: fine-tune each tower's backbone, print, add to ``eval.json``."""
    from omnissl.eval.features import limit
    from omnissl.eval.finetune import FinetuneConfig, finetune
    from omnissl.eval.summary import score
    from omnissl.train.distributed import resolve_device

    recipe, bundle = assembled.recipe, assembled.bundle
    if bundle.test is None:
        raise ConfigError(f"eval --finetune: dataset '{recipe.data.name}' has no test split")
    train_set = limit(bundle.train, recipe.eval.max_train_samples, seed=3)
    test_set = limit(bundle.test, recipe.eval.max_test_samples, seed=4)
    path = out_dir / "eval.json"
    combined = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    device = resolve_device(recipe.train.device)
    for tower, encoder in assembled.objective.towers.items():
        select = (lambda x, t=tower: x[t]) if recipe.is_paired else None
        results = {}
        for mode in args.finetune:
            config = FinetuneConfig(**{**_finetune_settings(args), "mode": mode})
            results[mode] = finetune(encoder, train_set, test_set, bundle, config, device=device, select=select)
            spread = "" if config.seeds == 1 else f" over {config.seeds} seeds"
            print(f"fine-tune {mode} (tower '{tower}'): {score(result=results[mode])}{spread}")
        combined.setdefault(tower, {})["finetune"] = results
    path.write_text(json.dumps(combined, indent=2), encoding="utf-8")


def cmd_report(args: argparse.Namespace) -> int:
    from omnissl.report import write_report

    page = write_report(Path(args.run_dir), data_root=args.data_root, embed=not args.no_map, max_points=args.points)
    print(f"wrote {page}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from omnissl.workflows.compare import CompareSettings, build_candidates, markdown_table, run_compare
    from omnissl.report.compare_page import write_compare_outputs
    from omnissl.train.distributed import resolve_device

    runs = [Path(r) for r in args.overrides if "=" not in r]
    overrides = [r for r in args.overrides if "=" in r]
    for run in runs:
        if not (run / "recipe.yaml").is_file():
            raise ConfigError(f"compare: {run} is not a run directory (no recipe.yaml)")
    recipe, bundle, candidates = build_candidates(runs, args.public or [], overrides=overrides,
                                                  data_root=args.data_root,
                                                  recipe_path=Path(args.recipe) if args.recipe else None)
    modes = [] if args.finetune == ["none"] else args.finetune
    settings = CompareSettings(fractions=args.fractions, finetune_modes=modes, finetune=_finetune_settings(args))
    result = run_compare(recipe, bundle, candidates, settings, device=resolve_device(args.device))
    out = Path(args.out or (runs[0] if runs else Path(".")) / "compare")
    paths = write_compare_outputs(result, out, command=shlex.join(["omnissl", *sys.argv[1:]]))
    print(markdown_table(result))
    print(f"wrote {paths['md']}, {paths['json']}, {paths['html']}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from omnissl.workflows.export import export_run

    for path in export_run(Path(args.run_dir), args.out, checkpoint=args.checkpoint, data_root=args.data_root,
                           overwrite=args.overwrite):
        print(f"wrote {path.parent} ({path.name} + encoder.safetensors)")
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from omnissl.train.assemble import build_data
    from omnissl.core.config import load_recipe
    from omnissl.workflows.export import CONFIG_NAME, check_output, embedding_paths, load_exported, write_embeddings
    from omnissl.workflows.session import load_trained

    target = Path(args.target)
    # Before loading anything: a refusal should not cost a model load and a pass over the dataset.
    check_output(embedding_paths(Path(args.out)), verb="embed", overwrite=args.overwrite, data_root=args.data_root)
    if (target / CONFIG_NAME).is_file():
        if not args.recipe:
            raise ConfigError(f"embed {target}: an export folder has no dataset; give --recipe RECIPE for the data")
        encoder = load_exported(target)
        bundle = build_data(load_recipe(args.recipe, args.overrides), root=args.data_root)
    elif (target / "recipe.yaml").is_file():
        assembled = load_trained(target, root=args.data_root,
                                 overrides=args.overrides if not args.recipe else None)
        if assembled.recipe.is_paired:
            raise ConfigError(f"embed {target}: a paired run; export it and embed one tower's folder with --recipe")
        encoder = assembled.objective.towers["main"]
        bundle = build_data(load_recipe(args.recipe, args.overrides), root=args.data_root) if args.recipe \
            else assembled.bundle
    else:
        raise ConfigError(f"embed {target}: neither a run directory (recipe.yaml) nor an export ({CONFIG_NAME})")
    splits = ("train", "test") if args.split == "all" else (args.split,)
    counts = write_embeddings(encoder, bundle, args.out, splits=splits, device=args.device, overwrite=args.overwrite)
    print(f"wrote {args.out}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" rows × {encoder.embed_dim}")
    return 0


def _finetune_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--finetune-blocks", type=int, help="last_blocks mode: how many final blocks train (default 1)")
    p.add_argument("--finetune-epochs", type=float, help="fine-tuning epochs over the train split (default 10)")
    p.add_argument("--finetune-min-steps", type=int, help="at least this many fine-tuning steps (default 100)")
    p.add_argument("--finetune-lr", type=float, help="head learning rate (default 3e-3)")
    p.add_argument("--encoder-lr-scale", type=float, help="encoder lr = head lr × this (default 0.1)")
    p.add_argument("--finetune-seeds", type=int, help="seeds to average (default 1)")


def add_data_root_options(p: argparse.ArgumentParser, *, data_root: bool = True) -> None:
    """``--data-root`` and the opt-in for recipe paths outside it (F15), for every verb that reads data."""
    if data_root:
        p.add_argument("--data-root", help="dataset root (default: $OMNISSL_DATA_DIR or ./data)")
    p.add_argument("--allow-outside-data-root", action="store_true",
                   help="let the recipe read files outside the data root (absolute paths or '..'); "
                        "same as OMNISSL_ALLOW_OUTSIDE_DATA_ROOT=1")


def add_eval_options(p: argparse.ArgumentParser) -> None:
    """Options ``omnissl eval`` gains: the fine-tuning mode of the shared evaluation."""
    p.add_argument("--finetune", nargs="+", choices=["last_blocks", "full"],
                   help="also fine-tune: last_blocks (last N blocks + head) and/or full (lower encoder lr)")
    _finetune_options(p)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("report", help="write RUN_DIR/report.html (plots, tables, embedding map)")
    p.add_argument("run_dir")
    add_data_root_options(p)
    p.add_argument("--no-map", action="store_true", help="skip the sections that load the model (embedding map)")
    p.add_argument("--points", type=int, default=1000, help="test samples in the embedding map (default 1000)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("compare", help="decision table: raw / random init / SSL runs / public backbones")
    # Named "overrides" so KEY=VALUE given after options is collected too (see omnissl.cli.main.main).
    p.add_argument("overrides", nargs="*", metavar="RUN_DIR", help="SSL run directories, then KEY=VALUE overrides")
    p.add_argument("--recipe", help="recipe naming the dataset and eval protocol (default: the first run's)")
    p.add_argument("--public", action="append", metavar="[LABEL=]SPEC",
                   help="public backbone: export folder, local HF model folder, or '{name: ENCODER, ...}'")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="label fractions")
    p.add_argument("--finetune", nargs="+", default=["last_blocks", "full"], choices=["last_blocks", "full", "none"])
    _finetune_options(p)
    p.add_argument("--out", help="output folder (default: FIRST_RUN/compare)")
    p.add_argument("--device", default="auto")
    add_data_root_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("embed", help="write embeddings of a dataset to .npy or .parquet")
    p.add_argument("target", help="run directory or export folder")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the data recipe")
    p.add_argument("--out", required=True, help="FILE.npy or FILE.parquet")
    p.add_argument("--recipe", help="take the dataset from this recipe (needed for an export folder)")
    p.add_argument("--split", choices=["train", "test", "all"], default="all")
    p.add_argument("--overwrite", action="store_true", help="replace existing embedding files (never by default)")
    p.add_argument("--device", default="auto")
    add_data_root_options(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("export", help="export a run's encoder(s) to safetensors + JSON (+ HF save_pretrained)")
    p.add_argument("run_dir")
    p.add_argument("--out", help="output folder (default: RUN_DIR/export)")
    p.add_argument("--checkpoint", help="a specific checkpoint file (default: the latest)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export (never by default)")
    add_data_root_options(p)
    p.set_defaults(func=cmd_export)
