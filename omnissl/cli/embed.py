"""``omnissl embed RUN_DIR|EXPORT --out FILE``: embeddings of a dataset as .npy or .parquet."""

from __future__ import annotations

import argparse
from pathlib import Path
from functools import partial
from typing import Any

from omnissl.cli.options import add_data_root_options
from omnissl.core.errors import ConfigError


def run(args: argparse.Namespace) -> int:
    from omnissl.train.assemble import build_data, tower_input
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
        data_recipe = load_recipe(args.recipe, args.overrides)
        bundle = build_data(data_recipe, root=args.data_root)
        tower = args.tower
    elif (target / "recipe.yaml").is_file():
        assembled = load_trained(target, root=args.data_root,
                                 overrides=args.overrides if not args.recipe else None)
        tower = pick_tower(assembled.tower_names, args.tower, where=f"embed {target}")
        encoder = assembled.encoders[tower]
        if args.recipe:
            data_recipe = load_recipe(args.recipe, args.overrides)
            bundle = build_data(data_recipe, root=args.data_root)
        else:
            data_recipe, bundle = assembled.recipe, assembled.bundle
    else:
        raise ConfigError(f"embed {target}: neither a run directory (recipe.yaml) nor an export ({CONFIG_NAME})")
    splits = ("train", "test") if args.split == "all" else (args.split,)
    # The tower's part of each batch of the data recipe (a one-tower data recipe's batch is the input itself).
    data_tower = pick_tower(list(data_recipe.towers), tower if tower in data_recipe.towers else None,
                            where=f"embed --recipe {args.recipe}" if args.recipe else f"embed {target}")
    counts = write_embeddings(encoder, bundle, args.out, splits=splits, select=partial(
        tower_input, data_recipe, tower=data_tower), device=args.device, overwrite=args.overwrite)
    print(f"wrote {args.out}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" rows × {encoder.embed_dim}")
    return 0


def pick_tower(towers: list[str], chosen: str | None, *, where: str) -> str:
    """The tower to embed: ``--tower``, or the only one."""
    if chosen is None:
        if len(towers) > 1:
            raise ConfigError(f"{where}: towers {', '.join(towers)}; choose one with --tower NAME")
        return towers[0]
    if chosen not in towers:
        raise ConfigError(f"{where}: --tower {chosen}: no such tower (have: {', '.join(towers)})")
    return chosen


def add_parser(sub: Any) -> None:
    p = sub.add_parser("embed", help="write embeddings of a dataset to .npy or .parquet")
    p.add_argument("target", help="run directory or export folder")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the data recipe")
    p.add_argument("--out", required=True, help="FILE.npy or FILE.parquet")
    p.add_argument("--recipe", help="take the dataset from this recipe (needed for an export folder)")
    p.add_argument("--split", choices=["train", "test", "all"], default="all")
    p.add_argument("--tower", help="the tower to embed (needed when the run or data recipe has several)")
    p.add_argument("--overwrite", action="store_true", help="replace existing embedding files (never by default)")
    p.add_argument("--device", default="auto")
    add_data_root_options(p)
    p.set_defaults(func=run)
