"""``omnissl cp NAME DEST``: copy a shipped recipe to edit (torchtune's ``tune cp``); never overwrites."""

from __future__ import annotations

import argparse
from typing import Any


def run(args: argparse.Namespace) -> int:
    from omnissl.core.recipes import copy_recipe

    target = copy_recipe(args.name, args.dest)
    print(f"wrote {target}; run it with: omnissl train {target}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("cp", help="copy a shipped recipe (see: omnissl list recipes) to edit it")
    p.add_argument("name", help="recipe name, e.g. image/simclr or simclr_digits")
    p.add_argument("dest", help="a file path, or a folder to copy it into")
    p.set_defaults(func=run)
