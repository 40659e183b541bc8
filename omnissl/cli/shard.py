"""``omnissl shard SOURCE --out DIR``: write WebDataset shards (+ ``manifest.json``) from a folder, a caption
manifest or a registered dataset, once, to stream from then on (``data: {name: webdataset, shards: DIR/train}``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from omnissl.cli.options import add_data_root_options


def run(args: argparse.Namespace) -> int:
    from omnissl.data.shard_sources import open_source
    from omnissl.data.shard_writer import write_shards
    from omnissl.train.assemble import data_root

    source = open_source(args.source, data_root=data_root(args.data_root))
    out = Path(args.out)
    if out.exists():  # checked before anything is written, for every split
        from omnissl.core.errors import DataError

        raise DataError(f"{out} already exists; omnissl shard never overwrites — choose a new --out")
    splits = list(source.splits)
    for split in splits:
        target = out / split if len(splits) > 1 or split != "train" or args.split_folders else out
        manifest = write_shards(source.samples(split, seed=args.seed, captions=args.captions), out=target, shard_size=args.shard_size,
                                classes=source.classes, prefix=split, format=source.format, extra=source.extra)
        print(f"wrote {target}: {manifest['samples']} samples in {len(manifest['shards'])} shards "
              f"(fields {', '.join(manifest['fields'])})")
    for note in source.notes:
        print(f"note: {note}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("shard", help="write WebDataset shards + manifest from a folder, caption list or dataset")
    p.add_argument("source", help="a folder (<class>/<file>, optionally under train/ and test/), a caption "
                                  "manifest (.csv/.jsonl: image_path, caption[, label]) or a registered dataset")
    p.add_argument("--out", required=True, help="output folder; must not exist (never overwritten)")
    p.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sample order written (default 0)")
    p.add_argument("--captions", metavar="TEMPLATE", help="add a caption member from the class name, e.g. "
                                                          "'a photo of a {}' (label-derived pairs, not real captions)")
    p.add_argument("--split-folders", action="store_true", help="write OUT/train even when there is no test split")
    add_data_root_options(p)
    p.set_defaults(func=run)
