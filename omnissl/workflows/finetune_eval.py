"""``omnissl eval --finetune MODE``: fine-tune each tower's backbone after the frozen-feature evaluation."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from omnissl.core.errors import ConfigError


def finetune_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--finetune-*`` options the user set (``None`` = the FinetuneConfig default)."""
    keys = {"blocks": args.finetune_blocks, "epochs": args.finetune_epochs, "min_steps": args.finetune_min_steps,
            "lr": args.finetune_lr, "encoder_lr_scale": args.encoder_lr_scale, "seeds": args.finetune_seeds}
    return {k: v for k, v in keys.items() if v is not None}


def finetune_eval(assembled: Any, args: argparse.Namespace, out_dir: Path) -> None:
    """``omnissl eval --finetune MODE``: the ``finetune`` protocol (one per mode) on each tower's trained row, through
    the engine; the cells join that tower's table in ``eval.json``."""
    from omnissl.eval.engine import Row, run_table
    from omnissl.eval.finetune import build_finetune
    from omnissl.eval.table import ResultTable, format_column
    from omnissl.train.distributed import resolve_device
    from omnissl.workflows.evaluation import make_context

    recipe = assembled.recipe
    if assembled.bundle.test is None:
        raise ConfigError(f"eval --finetune: dataset '{recipe.data.name}' has no test split")
    path = out_dir / "eval.json"
    combined = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    ctx = make_context(assembled, resolve_device(recipe.train.device))
    settings = finetune_settings(args)
    if "seeds" in settings:
        settings["finetune_seeds"] = settings.pop("seeds")
    protocols = []
    for mode in args.finetune:
        protocol = build_finetune(mode=mode, **settings)
        protocol.name = f"finetune {mode}"
        protocols.append(protocol)
    for tower, encoder in assembled.encoders.items():
        name = f"{recipe.objective.name} (trained)"
        found = run_table([Row(name=name, kind="ssl", encoder=encoder, select=assembled.selector(tower))],
                          protocols, ctx, tower=tower)
        cells = found.rows[0]["cells"]
        for protocol in protocols:
            shown = next(iter(cells[protocol.name]["columns"].values()))
            print(f"{protocol.name} (tower '{tower}'): {format_column(shown)}")
        table = ResultTable.from_json(combined[tower]) if tower in combined else found
        if table is not found:
            target = next((r for r in table.rows if r["kind"] == "ssl"), None)
            if target is None:
                table.rows.insert(0, found.rows[0])
            else:
                target["cells"].update(cells)
            table.protocols += [p.name for p in protocols if p.name not in table.protocols]
        combined[tower] = table.to_json()
    path.write_text(json.dumps(combined, indent=2), encoding="utf-8")
