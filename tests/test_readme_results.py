"""The README's results table is generated from the benchmark JSON: it must match what the generator prints now
(a result file changed without regenerating the README fails here), and its verdict rule must be the stated one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import readme_results  # noqa: E402


def test_readme_block_is_up_to_date() -> None:
    done = subprocess.run([sys.executable, str(Path(readme_results.__file__)), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_every_adapter_reads_its_results() -> None:
    for adapter in readme_results.ADAPTERS:
        rows = list(adapter())
        assert rows, f"{adapter.__name__}: no rows read from benchmarks/results"
        for row in rows:
            assert 0 <= row["value"] <= 1, row


def test_beats_both_needs_more_than_the_spread() -> None:
    base = {"value": 0.80, "std": 0.02, "random": 0.77, "random_std": 0.01, "raw": 0.70}
    assert readme_results.beats_both(base)
    assert not readme_results.beats_both({**base, "random": 0.79})  # 1 point above, spread 2
    assert not readme_results.beats_both({**base, "raw": 0.81})
    assert readme_results.beats_both({**base, "raw": None})


def test_timeseries_parts_rerun_replaces_a_pair_in_place_and_never_averages() -> None:
    """The one merge both timeseries.md (`timeseries.py --combine`) and the README table use."""
    import timeseries_parts

    def run(method: str, dataset: str, seed: int, accuracy: float) -> dict:
        return {"method": method, "dataset": dataset, "seed": seed, "accuracy": accuracy}

    old = {"runs": [run("a", "X", 0, 0.1), run("a", "X", 1, 0.2), run("b", "X", 0, 0.5)], "raw": {"X": 1}}
    new = {"runs": [run("a", "X", 0, 0.9)], "raw": {"X": 2}, "command": "rerun"}
    merged = timeseries_parts.merge([old, new])
    assert [(r["method"], r["accuracy"]) for r in merged["runs"]] == [("a", 0.9), ("b", 0.5)]  # seed 1 of a: gone
    assert merged["raw"] == {"X": 2} and merged["command"] == ["rerun"]
