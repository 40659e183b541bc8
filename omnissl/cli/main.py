"""The ``omnissl`` command: builds the parser from the verb modules in :data:`VERBS` and dispatches.

Each verb is one module ``omnissl/cli/<verb>.py`` with ``add_parser(subparsers)`` (which sets ``func``) and a
``run(args) -> int``; adding a verb is one new module and one line in :data:`VERBS` (then refresh the CLI-surface
snapshot: ``python -m tests.core.cli_surface --write``). Verb modules import only argparse-level things at the top
so ``omnissl --help`` stays fast; the work they do is imported inside ``run``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from omnissl.core.errors import OmnisslError
from omnissl.core.paths import outside_paths

INTERRUPTED = 130  # the shell's code for a command ended by SIGINT

# The verbs, in the order `omnissl --help` lists them.
VERBS = (
    "list",
    "validate",
    "train",
    "eval",
    "pseudolabel",
    "report",
    "compare",
    "embed",
    "export",
    "shard",
    "cp",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnissl", description="Self-supervised learning for every modality.")
    sub = parser.add_subparsers(dest="command", required=True)
    for verb in VERBS:
        importlib.import_module(f"omnissl.cli.{verb}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may come after options (argparse would stop collecting positionals there).
    stray = [e for e in extra if e.startswith("-") or "=" not in e]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    opt_in = outside_paths(True) if getattr(args, "allow_outside_data_root", False) else contextlib.nullcontext()
    try:
        with opt_in:  # scoped to this command, so an in-process caller (tests, notebooks) is not left opted in
            return int(args.func(args))
    except OmnisslError as error:
        print(f"omnissl: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside training (which stops cleanly itself): one line, not a traceback
        hint = getattr(args, "interrupt_hint", None)
        print(f"\nomnissl: interrupted{'; ' + hint if hint else ''}", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
