"""``omnissl list [KIND] [--modality M] [--pattern P] [--params NAME]``: the registered components."""

from __future__ import annotations

import argparse
import difflib
import fnmatch
from typing import Any

from omnissl.core.errors import OmnisslError
from omnissl.core.registry import REGISTRIES, load_plugins, unavailable_plugins


def _check_modality(name: str) -> None:
    """An unknown ``--modality`` would list nothing at all, which reads as "no components": say so instead."""
    known = {"any", *load_plugins()} | {e.modality for registry in REGISTRIES.values() for e in registry.entries()}
    if name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise OmnisslError(f"--modality: unknown modality '{name}'{hint}; known: {', '.join(sorted(known))}")


def run(args: argparse.Namespace) -> int:
    if args.params:
        from omnissl.workflows.listing import describe_params

        print(describe_params(args.params, kind=args.kind))
        return 0
    if args.modality:
        _check_modality(args.modality)
    kinds = [args.kind] if args.kind else list(REGISTRIES)
    print(f"plugins: {', '.join(load_plugins()) or 'none'}")
    for reason in unavailable_plugins().values():  # installed but missing an extra: say what to pip install
        print(f"unavailable: {reason}")
    for kind in kinds:
        entries = [e for e in REGISTRIES[kind].entries() if fnmatch.fnmatch(e.name, args.pattern)
                   and (not args.modality or e.modality in (args.modality, "any"))]
        print(f"\n{kind} ({len(entries)})")
        for entry in entries:
            print(f"  {entry.name:<28} {entry.modality:<11} {entry.description}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="list registered components")
    p.add_argument("kind", nargs="?", choices=list(REGISTRIES))
    p.add_argument("--modality", help="only this modality (and modality-agnostic components)")
    p.add_argument("--pattern", default="*", help="shell-style name pattern, e.g. 'resnet*'")
    p.add_argument("--params", metavar="NAME", help="show component NAME's parameters: types, defaults and which "
                                                    "ones the recipe's context fills in")
    p.set_defaults(func=run)
