"""``omnissl embed RUN_DIR|EXPORT --out FILE``: embeddings of a dataset as .npy or .parquet."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options
from omnissl.core.errors import ConfigError


def run(args: argparse.Namespace) -> int:
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


def add_parser(sub: Any) -> None:
    p = sub.add_parser("embed", help="write embeddings of a dataset to .npy or .parquet")
    p.add_argument("target", help="run directory or export folder")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="overrides of the data recipe")
    p.add_argument("--out", required=True, help="FILE.npy or FILE.parquet")
    p.add_argument("--recipe", help="take the dataset from this recipe (needed for an export folder)")
    p.add_argument("--split", choices=["train", "test", "all"], default="all")
    p.add_argument("--overwrite", action="store_true", help="replace existing embedding files (never by default)")
    p.add_argument("--device", default="auto")
    add_data_root_options(p)
    p.set_defaults(func=run)
