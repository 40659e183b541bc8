"""``omnissl list [KIND] [--modality M] [--pattern P] [--params NAME]``: the registered components, read from the
plugins' manifests (no plugin is imported unless its manifest is missing or older than its code)."""

from __future__ import annotations

import argparse
import difflib
import fnmatch
import sys
from typing import Any

from omnissl.core.errors import OmnisslError
from omnissl.core.registry import REGISTRIES


def _check_modality(name: str, catalog: Any) -> None:
    """An unknown ``--modality`` would list nothing at all, which reads as "no components": say so instead."""
    known = {"any", *catalog.plugins} | {c["modality"] for c in catalog.components}
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OmnisslError(f"--modality: unknown modality '{name}'{hint}; known: {', '.join(sorted(known))}")


def _list_recipes(args: argparse.Namespace) -> int:
    """The shipped recipes: name, modality, method and the headline result its header states."""
    from omnissl.core.recipes import shipped_recipes, summarise

    rows = [summarise(name, path) for name, path in shipped_recipes().items()
            if fnmatch.fnmatch(name, args.pattern) or fnmatch.fnmatch(name.rsplit("/", 1)[-1], args.pattern)]
    rows = [r for r in rows if not args.modality or r.modality == args.modality]
    print(f"recipes ({len(rows)}): omnissl train NAME | omnissl cp NAME DEST")
    for r in rows:
        print(f"  {r.name:<34} {r.modality:<11} {r.method:<15} {r.headline or '-'}")
    return 0


def run(args: argparse.Namespace) -> int:
    from omnissl.core.manifests import REGENERATE
    from omnissl.workflows.listing import catalog, describe_params

    if args.kind == "recipes":
        return _list_recipes(args)
    found = catalog()
    if found.imported:  # still correct (read live), only slower: say how to make it fast again
        print(f"omnissl: note: no current manifest for {', '.join(found.imported)} (imported instead); "
              f"regenerate with: {REGENERATE}", file=sys.stderr)
    if args.params:
        print(describe_params(args.params, kind=args.kind, components=found.components))
        return 0
    if args.modality:
        _check_modality(args.modality, found)
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    print(f"plugins: {', '.join(found.plugins) or 'none'}")
    for reason in found.unavailable.values():  # installed but missing an extra: say what to pip install
        print(f"unavailable: {reason}")
    for kind in kinds:
        records = sorted((c for c in found.components if c["registry"] == kind and fnmatch.fnmatch(c["name"], args.pattern)
                          and (not args.modality or c["modality"] in (args.modality, "any"))), key=lambda c: c["name"])
        print(f"\n{kind} ({len(records)})")
        for record in records:
            print(f"  {record['name']:<28} {record['modality']:<11} {record['description']}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list registered components (or the shipped recipes: list recipes)")
    p.add_argument("kind", nargs="?", choices=[*REGISTRIES, "recipes"])
    p.add_argument("--modality", help="only this modality (and modality-agnostic components)")
    p.add_argument("--pattern", default="*", help="shell-style name pattern, e.g. 'resnet*'")
    p.add_argument("--params", metavar="NAME", help="show component NAME's parameters: types, defaults and which "
                                                    "ones the recipe's context fills in")
    p.set_defaults(func=run)
