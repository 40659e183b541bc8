"""The time-series result files the tables are built from, and how they merge (no torch: readme_results uses it).

``timeseries.json`` first, then each part in order; a later part's (method, dataset) runs **replace** an earlier
part's, never average with them (a rerun supersedes). Other ``timeseries.*.json`` files are rejected trials.
"""

from __future__ import annotations

from typing import Any

PARTS = ("timeseries.json", "timeseries.jv.json", "timeseries.methods.json", "timeseries.issue23.json",
         "timeseries.issue24.json", "timeseries.issue24b.json", "timeseries.issue24c.json", "timeseries.issue24d_tnc.json",
         "timeseries.issue24d_dae.json", "timeseries.issue24f.json")


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Result dicts (``runs``, ``raw``, optional ``methods``/``command``/``machine``/``reference``) → one, later runs replacing
    earlier ones per (method, dataset); the latest part's raw-series baseline per dataset wins too."""
    merged: dict[str, Any] = {"runs": [], "raw": {}, "methods": [], "command": [], "machine": ""}
    by_pair: dict[tuple[str, str], list[dict[str, Any]]] = {}  # keeps each pair where it first appeared
    for part in parts:
        fresh: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for run in part.get("runs", []):
            fresh.setdefault((run["method"], run["dataset"]), []).append(run)
        by_pair.update(fresh)
        merged["raw"].update(part.get("raw", {}))
        merged["methods"] = list(dict.fromkeys([*merged["methods"], *part.get("methods", [])]))
        if "command" in part:
            merged["command"].append(part["command"])
        merged["machine"] = part.get("machine", merged["machine"])
        if "reference" in part:  # the TS2Vec reference figures the latest part that ran against it used
            merged["reference"] = part["reference"]
    merged["runs"] = [run for runs in by_pair.values() for run in runs]
    return merged
