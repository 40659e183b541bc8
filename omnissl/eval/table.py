"""The one result table of an evaluation: rows × protocol columns, rendered to Markdown, JSON and HTML.

``eval``, ``train``'s final evaluation, ``compare``, the report and the benchmarks all write this shape, so one
renderer serves them all. JSON layout: ``{"dataset", "tower", "train_samples", "test_samples", "protocols",
"rows": [{"name", "kind", "dim", "cells": {protocol: cell}}], "notes", "verdict"?}``; a cell's ``columns`` map a
heading to ``{"mean", "std", "seeds"}`` (or ``{"mean", "plain": true}``), accuracies in [0, 1].
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omnissl.eval.summary import score


def format_column(value: dict[str, Any] | None) -> str:
    if not value:
        return "—"
    if value.get("plain"):
        return f"{100 * float(value['mean']):.2f}"
    return score(result=value)


@dataclass
class ResultTable:
    dataset: str
    tower: str
    train_samples: int
    test_samples: int
    protocols: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultTable:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")

    def headings(self) -> list[str]:
        """Column headings in protocol order, each once (a row without a protocol shows "—")."""
        seen: dict[str, None] = {}
        for protocol in self.protocols:
            for row in self.rows:
                for heading in row["cells"].get(protocol, {}).get("columns", {}):
                    seen.setdefault(heading, None)
        return list(seen)

    def grid(self) -> tuple[list[str], list[list[str]]]:
        """(header, body) of formatted cells: what every renderer shows."""
        headings = self.headings()
        header = ["features", "kind", "dim", *headings]
        body = []
        for row in self.rows:
            columns: dict[str, Any] = {}
            for protocol in self.protocols:
                columns.update(row["cells"].get(protocol, {}).get("columns", {}))
            dim = "—" if row.get("dim") is None else str(row["dim"])
            body.append([row["name"], row["kind"], dim, *[format_column(columns.get(h)) for h in headings]])
        return header, body

    def table(self) -> str:
        """Markdown: one row per encoder or baseline, then the notes and the verdict."""
        header, body = self.grid()
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        lines += [f"\n{note}" for note in self.notes]
        if self.verdict:
            lines.append(f"\n**Verdict:** {self.verdict}")
        return "\n".join(lines)

    def html(self) -> str:
        """An HTML ``<table>`` (escaped) with the notes and verdict as paragraphs."""
        header, body = self.grid()
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>" for cells in body)
        extra = "".join(f"<p>{html.escape(n)}</p>" for n in self.notes)
        if self.verdict:
            extra += f"<p><b>Verdict:</b> {html.escape(self.verdict)}</p>"
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{extra}"

    def row(self, name: str) -> dict[str, Any]:
        for row in self.rows:
            if row["name"] == name:
                return row
        raise KeyError(f"no row '{name}' in the table (rows: {', '.join(r['name'] for r in self.rows)})")

    def score_of(self, row: dict[str, Any], protocol: str) -> dict[str, Any] | None:
        """A row's headline score under ``protocol``, or that of a baseline row filed under it."""
        found = row["cells"].get(protocol)
        return found.get("score") if found else None
