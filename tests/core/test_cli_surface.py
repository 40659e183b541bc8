"""The CLI surface is frozen: every verb and every option (name, nargs, default, choices) matches a committed
snapshot, so a flag changes only on purpose (torchtitan freezes its CLI the same way).

After a deliberate change (a new verb such as ``shard`` or ``cp``, a new option), rewrite the snapshot with::

    .venv/bin/python tests/core/test_cli_surface.py --write

and commit ``tests/core/cli_surface.json`` with the change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SNAPSHOT = Path(__file__).with_name("cli_surface.json")
REWRITE = ".venv/bin/python tests/core/test_cli_surface.py --write"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)  # e.g. argparse.SUPPRESS objects, callables: their repr is stable enough to notice change


def _option(action: argparse.Action) -> dict[str, Any]:
    return {"name": action.option_strings[-1] if action.option_strings else action.dest,
            "nargs": _jsonable(action.nargs), "default": _jsonable(action.default),
            "choices": _jsonable(list(action.choices)) if action.choices is not None else None,
            "required": action.required}


def surface() -> dict[str, list[dict[str, Any]]]:
    """``{verb: [option, ...]}`` in parser order (positionals and flags alike), from the live parser."""
    from omnissl.cli.main import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {verb: [_option(a) for a in p._actions if not isinstance(a, argparse._HelpAction)]
            for verb, p in sub.choices.items()}


def test_cli_surface_matches_the_snapshot() -> None:
    live = surface()
    frozen = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    changes = [f"verb '{v}' added" for v in live if v not in frozen]
    changes += [f"verb '{v}' removed" for v in frozen if v not in live]
    for verb in set(live) & set(frozen):
        was = {o["name"]: o for o in frozen[verb]}
        now = {o["name"]: o for o in live[verb]}
        changes += [f"{verb} {n}: added" for n in now if n not in was]
        changes += [f"{verb} {n}: removed" for n in was if n not in now]
        changes += [f"{verb} {n}: {was[n]} -> {now[n]}" for n in now if n in was and now[n] != was[n]]
    assert not changes, ("the CLI surface changed:\n  " + "\n  ".join(sorted(changes))
                         + f"\nIf this is deliberate, rewrite the snapshot and commit it: {REWRITE}")


def test_snapshot_is_not_trivially_empty() -> None:
    frozen = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert {"list", "validate", "train", "eval"} <= set(frozen)
    assert any(o["name"] == "--run-dir" for o in frozen["train"])


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit(f"usage: {REWRITE}")
    SNAPSHOT.write_text(json.dumps(surface(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOT}")
