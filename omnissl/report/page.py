"""``omnissl report RUN_DIR``: write ``RUN_DIR/report.html`` (self-contained) and the PNGs in ``RUN_DIR/report/``.

Sections: loss + learning rate, k-NN accuracy during training, the collapse monitor, the probe table(s) from
``eval.json`` (backbone beside its baselines, with spread over seeds), a t-SNE map of the trained backbone's
test features coloured by label, and the extras that apply (nearest-neighbour images, MAE reconstructions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from omnissl.core.errors import ConfigError, DataError
from omnissl.report import extras, plots
from omnissl.report.embedding_map import knn_consistency, plot_embedding_map
from omnissl.report.html import Section, write_html
from omnissl.report.sections import (eval_table, evaluation_sections, knn_references, missing_curves, recipe_text,
                                     train_settings)

__all__ = ["collect", "eval_table", "write_report"]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error})") from error


def _compare_section(folder: Path) -> Section:
    from omnissl.workflows.compare import markdown_table
    from omnissl.report.compare_page import _table

    result = _read_json(folder / "compare.json")
    section = Section(title=f"decision table — {result['dataset']} (from {folder.name}/compare.json)")
    section.tables.append(_table(markdown_table(result)))
    section.verdict = f"Verdict: {result['verdict']}"
    if (folder / "figures" / "label_efficiency.png").is_file():
        section.images.append(folder / "figures" / "label_efficiency.png")
    return section


@torch.no_grad()
def collect(encoder: torch.nn.Module, dataset: Any, bundle: Any, *, select: Any, keep_inputs: bool,
            device: torch.device, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Pooled features ``(N, D)``, labels ``(N,)`` and (for image inputs, when asked) the inputs ``(N, C, H, W)``."""
    from omnissl.data.tensors import evaluation_loader
    from omnissl.core.types import to_device

    was_training = encoder.training
    encoder.eval()
    features, labels, inputs = [], [], []
    try:
        for batch in evaluation_loader(dataset, bundle, batch_size=batch_size):
            x = select(batch["x"])
            features.append(encoder(to_device(x, device)).pooled.float().cpu())
            labels.append(torch.as_tensor(batch["y"]).cpu())
            if keep_inputs and extras.is_image_batch(x):
                inputs.append(x.cpu())
    finally:
        encoder.train(was_training)
    images = torch.cat(inputs) if inputs and len(inputs) == len(features) else None
    return torch.cat(features), torch.cat(labels), images


def _model_sections(run_dir: Path, figures: Path, *, data_root: str | Path | None, max_points: int,
                    device: torch.device) -> list[Section]:
    """The sections that need the trained model: embedding map and extras (one map per tower)."""
    from omnissl.eval.features import limit
    from omnissl.workflows.session import load_trained

    assembled = load_trained(run_dir, root=data_root)
    assembled.objective.to(device)
    bundle, recipe = assembled.bundle, assembled.recipe
    # The map shows (at most) the samples the evaluation protocol used.
    max_points = min(max_points, recipe.eval.max_test_samples or max_points)
    split = bundle.test if bundle.test is not None else bundle.train
    points = limit(split, max_points, seed=4)
    sections = []
    for tower, encoder in assembled.objective.towers.items():
        select = assembled.selector(tower)
        feats, labels, images = collect(encoder, points, bundle, select=select, keep_inputs=True, device=device)
        if labels.dim() != 1 or labels.shape[0] != feats.shape[0]:
            continue  # e.g. multi-label targets: no single colour per point
        section = Section(title=f"embedding map — tower '{tower}'")
        name = "embedding_map" if tower == "main" else f"embedding_map_{tower}"
        section.images.append(plot_embedding_map(
            feats, labels, figures / f"{name}.png", seed=recipe.seed, class_names=bundle.class_names,
            title=f"t-SNE of {len(labels)} {'test' if bundle.test is not None else 'train'} features"))
        section.paragraphs.append(f"Share of each point's 10 nearest neighbours (cosine, full feature space) with "
                                  f"the same label: {100 * knn_consistency(feats, labels):.1f}%.")
        sections.append(section)
        if images is None:
            section.paragraphs.append("nearest-neighbour retrieval: shown for image inputs only ((B, C, H, W) with "
                                      "1 or 3 channels); this run's inputs are not images")
        else:
            bank = limit(bundle.train, max_points, seed=3)
            bank_feats, bank_labels, bank_images = collect(encoder, bank, bundle, select=select, keep_inputs=True,
                                                           device=device)
            if bank_images is not None:
                extra = Section(title="nearest-neighbour retrieval")
                extra.images.append(extras.plot_retrieval(images, labels, feats, bank_images, bank_labels,
                                                          bank_feats, figures / "retrieval.png",
                                                          class_names=bundle.class_names, seed=recipe.seed))
                mae = extras.plot_mae_reconstructions(assembled.objective, images, figures / "mae_reconstructions.png",
                                                      seed=recipe.seed)
                if mae is not None:
                    extra.images.append(mae)
                sections.append(extra)
    return sections


def write_report(run_dir: str | Path, *, data_root: str | Path | None = None, embed: bool = True,
                 max_points: int = 1000, device: str = "cpu") -> Path:
    """Write ``report.html`` and ``report/*.png`` into ``run_dir``; return the HTML path."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a directory (expected an omnissl run directory)")
    figures = run_dir / "report"
    figures.mkdir(exist_ok=True)
    records = plots.read_metrics(run_dir / "metrics.jsonl")
    evaluation = _read_json(run_dir / "eval.json") if (run_dir / "eval.json").is_file() else None
    sections: list[Section] = []
    curves = Section(title="training")
    for make, name in ((plots.plot_loss_lr, "loss_lr"),
                       (lambda r, p: plots.plot_knn(r, p, references=knn_references(evaluation)), "knn_accuracy"),
                       (plots.plot_collapse, "collapse_monitor")):
        image = make(records, figures / f"{name}.png")
        if image is not None:
            curves.images.append(image)
    if not records:
        curves.paragraphs.append("metrics.jsonl is missing or empty: no training curves.")
    curves.paragraphs += missing_curves(records, train_settings(run_dir))
    sections.append(curves)
    if evaluation is not None:
        sections += evaluation_sections(evaluation)
    else:
        sections.append(Section(title="evaluation", paragraphs=[
            "no eval.json: the run was not evaluated (trained with --no-eval, or stopped early); "
            f"run omnissl eval {run_dir}"]))
    if (run_dir / "compare" / "compare.json").is_file():  # `omnissl compare RUN_DIR` writes there by default
        sections.append(_compare_section(run_dir / "compare"))
    checkpoints = sorted((run_dir / "checkpoints").glob("*.pt")) if (run_dir / "checkpoints").is_dir() else []
    if embed and checkpoints and (run_dir / "recipe.yaml").is_file():
        from omnissl.train.distributed import resolve_device

        sections += _model_sections(run_dir, figures, data_root=data_root, max_points=max_points,
                                    device=resolve_device(device))
    else:
        why = ("report --no-map (or train --no-eval) skips loading the model" if not embed else
               "no checkpoint in checkpoints/" if not checkpoints else "no recipe.yaml")
        sections.append(Section(title="embedding map and retrieval", paragraphs=[f"not drawn: {why}"]))
    if (run_dir / "notes.log").is_file():
        sections.append(Section(title="notes", preformatted=(run_dir / "notes.log").read_text(encoding="utf-8")))
    if (run_dir / "recipe.yaml").is_file():
        sections.append(Section(title="recipe", preformatted=recipe_text(run_dir / "recipe.yaml")))
    last = max((r["step"] for r in records), default=0)
    return write_html(run_dir / "report.html", f"omnissl run report: {run_dir.name}", sections,
                      subtitle=f"{len(records)} metric records, last step {last}; {len(checkpoints)} checkpoint(s)")
