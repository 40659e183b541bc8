"""Write the decision table: ``compare.json`` (every number), ``compare.md`` (the table + verdict) and a
self-contained ``compare.html`` with the label-efficiency plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omnissl.report.html import Section, write_html
from omnissl.report.plots import plot_label_efficiency


def _table(markdown: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


def finetune_settings(settings: dict[str, Any]) -> str:
    """compare.json's ``finetune`` settings as a sentence (the page printed the raw Python dict)."""
    modes = settings.get("modes") or []
    if not modes:
        return "fine-tuning: off"
    seeds = settings.get("seeds", 1)
    parts = [f"{settings['blocks']} last block(s) for last_blocks" if "last_blocks" in modes and "blocks" in settings
             else "", f"{settings['epochs']:g} epoch(s)" if isinstance(settings.get("epochs"), (int, float)) else "",
             f"≥ {settings['min_steps']} steps" if "min_steps" in settings else "",
             f"head lr {settings['lr']:g}" if isinstance(settings.get("lr"), (int, float)) else "",
             f"encoder lr × {settings['encoder_lr_scale']:g}" if isinstance(settings.get("encoder_lr_scale"),
                                                                            (int, float)) else "",
             f"{seeds} seed{'s' if seeds != 1 else ''}"]
    return f"fine-tuning: {', '.join(modes)} ({', '.join(p for p in parts if p)})"


def write_compare_outputs(result: dict[str, Any], out_dir: Path, *, command: str = "") -> dict[str, Path]:
    from omnissl.workflows.compare import markdown_table

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / "figures"
    figures.mkdir(exist_ok=True)
    table = markdown_table(result)  # the one result-table renderer (omnissl.eval.table)
    paths = {"json": out_dir / "compare.json", "md": out_dir / "compare.md", "html": out_dir / "compare.html"}
    paths["json"].write_text(json.dumps({**result, "command": command}, indent=2), encoding="utf-8")
    header = (f"# Decision table: {result['dataset']}\n\n{result['train_samples']} train / {result['test_samples']} "
              f"test samples; probe over {result['probe_seeds']} seeds; accuracies in %.\n\n")
    paths["md"].write_text(header + (f"Command: `{command}`\n\n" if command else "") + table, encoding="utf-8")
    curves = {row["name"]: {str(float(h.split("%")[0]) / 100): (p["mean"], p.get("std") or 0.0)
                            for h, p in row["cells"]["label_efficiency"]["columns"].items()}
              for row in result["rows"] if "label_efficiency" in row.get("cells", {})}
    section = Section(title=f"decision table — {result['dataset']}")
    section.paragraphs.append(f"{result['train_samples']} train / {result['test_samples']} test samples, the same "
                              f"for every row; linear probe mean ± std over {result['probe_seeds']} seeds; "
                              f"{finetune_settings(result.get('finetune') or {})}.")
    if command:
        section.paragraphs.append(f"command: {command}")
    section.tables.append(_table(table))
    section.verdict = f"Verdict: {result['verdict']}"
    plot = plot_label_efficiency(curves, figures / "label_efficiency.png")
    if plot is not None:
        section.images.append(plot)
    write_html(paths["html"], f"omnissl compare: {result['dataset']}", [section])
    return paths
