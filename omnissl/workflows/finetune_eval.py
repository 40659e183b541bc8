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
            config = FinetuneConfig(**{**finetune_settings(args), "mode": mode})
            results[mode] = finetune(encoder, train_set, test_set, bundle, config, device=device, select=select)
            spread = "" if config.seeds == 1 else f" over {config.seeds} seeds"
            print(f"fine-tune {mode} (tower '{tower}'): {score(result=results[mode])}{spread}")
        combined.setdefault(tower, {})["finetune"] = results
    path.write_text(json.dumps(combined, indent=2), encoding="utf-8")
