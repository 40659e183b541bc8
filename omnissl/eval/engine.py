"""One evaluation engine: fixed subsets, rows × registered protocols, cached baselines, progress lines.

Every caller — ``train``'s final evaluation, ``omnissl eval``, ``omnissl compare`` (the same table with more rows,
plus a verdict), the report and the benchmarks — builds its rows and calls :func:`run_table`. The subsets are fixed
once (:func:`fixed_subsets`: seeded, the same for every row); protocol hyper-parameters are chosen on validation
parts of train, never on test (each protocol's docstring says how).

Baseline rows (random init, raw input) and the strong baselines protocols add (TF-IDF + LR, GBDT, …) depend only on
(dataset, subsets, architecture, seed, protocol settings): their cells are cached under the run root by a
:class:`CellCache` (``runs/.cache/baselines/<sha256 of the key>.json``), so repeated commands reuse them.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from typing import Protocol as TypingProtocol

from omnissl.core.config import Component
from omnissl.core.errors import ConfigError
from omnissl.core.types import DataBundle, to_device
from omnissl.data.tensors import Subset, evaluation_loader
from omnissl.eval.features import limit
from omnissl.eval.protocol import Cell, EvalContext, Protocol, Row
from omnissl.eval.splits import indices_hash
from omnissl.eval.table import ResultTable

DEFAULT_PROTOCOLS = ("knn", "linear_probe")  # a recipe without eval.protocols: the core's frozen-feature pair


class CellCache(TypingProtocol):
    def get(self, key: Mapping[str, Any]) -> Cell | None: ...

    def put(self, key: Mapping[str, Any], value: Cell) -> None: ...


def cache_digest(key: Mapping[str, Any]) -> str:
    """sha256 of the key's canonical JSON: the cache file name."""
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def protocol_context(eval_config: Any, bundle: DataBundle) -> dict[str, Any]:
    """What a protocol builder's omitted parameters are filled from: the recipe's ``eval`` defaults, then the
    dataset's ``input_spec``."""
    return {**dict(bundle.input_spec), "num_classes": bundle.num_classes, "k": list(eval_config.knn_k),
            "temperature": eval_config.knn_temperature, "seeds": eval_config.probe_seeds,
            "max_iter": eval_config.probe_max_iter, "weight_decays": list(eval_config.probe_weight_decays),
            "val_fraction": eval_config.val_fraction}


def protocol_specs(eval_config: Any) -> list[Component]:
    chosen = getattr(eval_config, "protocols", None)
    return list(chosen) if chosen is not None else [Component(name=n) for n in DEFAULT_PROTOCOLS]


def build_protocols(eval_config: Any, bundle: DataBundle) -> list[Protocol]:
    """The recipe's ``eval.protocols`` built and validated (errors name ``eval.protocols.<i>.<key>``)."""
    from omnissl.core.instantiate import build_component
    from omnissl.core.registry import EVALUATIONS

    context = protocol_context(eval_config, bundle)
    built = []
    for i, spec in enumerate(protocol_specs(eval_config)):
        protocol = build_component(EVALUATIONS, spec, f"eval.protocols.{i}", context)
        if not isinstance(protocol, Protocol):
            raise ConfigError(f"eval.protocols.{i}: '{spec.name}' built a {type(protocol).__name__}, not a Protocol")
        built.append(protocol)
    return built


def fixed_subsets(bundle: DataBundle, eval_config: Any, *, dataset_name: str) -> tuple[Any, Any]:
    """The train and test subsets every row and protocol of a table sees (seeded; all when no limit is set)."""
    if bundle.test is None:
        raise ConfigError(f"eval: dataset '{dataset_name}' has no test split to evaluate on")
    return (limit(bundle.train, eval_config.max_train_samples, seed=3),
            limit(bundle.test, eval_config.max_test_samples, seed=4))


def subset_identity(dataset: Any) -> dict[str, Any]:
    indices = dataset.indices if isinstance(dataset, Subset) else None
    return {"size": len(dataset), "indices_sha256": indices_hash(indices) if indices is not None else "all"}


class Progress:
    """``eval: [i/n] row · protocol``: one updating line on a terminal, one line per step otherwise."""

    def __init__(self, total: int, *, stream: Any = None) -> None:
        self.total, self.done, self.stream = total, 0, stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def step(self, row: str, protocol: str, *, cached: bool = False) -> None:
        self.done += 1
        text = f"eval: [{self.done}/{self.total}] {row} · {protocol}{' (cached)' if cached else ''}"
        if self.tty:
            end = "\n" if self.done == self.total else ""
            self.stream.write("\r\033[K" + text + end)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def check_rows(rows: Sequence[Row], ctx: EvalContext) -> None:
    """Before any work: every row's modality matches the dataset's and its encoder reads one batch of its input,
    so a wrong ``--public`` backbone fails in a second with one line, not after the other rows ran."""
    for row in rows:
        if row.modality not in ("any", ctx.modality) and ctx.modality != "any":
            raise ConfigError(f"eval: row '{row.name}' is a {row.modality} encoder but dataset '{ctx.dataset_name}' "
                              f"is {ctx.modality}")
        if row.encoder is None and row.objective is None and ctx.bundle.raw_features is None:
            raise ConfigError(f"eval: row '{row.name}': dataset '{ctx.dataset_name}' defines no raw features")
        if row.encoder is None:
            continue
        batch = next(iter(evaluation_loader(Subset(ctx.train_set, [0, 1][:len(ctx.train_set)]), ctx.bundle,
                                            batch_size=2)))
        row.encoder.to(ctx.device)
        was_training = row.encoder.training
        row.encoder.eval()
        try:
            import torch

            with torch.no_grad():
                row.encoder(to_device(row.select(batch["x"]), ctx.device))
        except Exception as error:
            spec = ", ".join(f"{k}={v}" for k, v in ctx.bundle.input_spec.items() if isinstance(v, (int, str)))
            raise ConfigError(f"eval: row '{row.name}' cannot read dataset '{ctx.dataset_name}' ({spec}): "
                              f"{type(error).__name__}: {' '.join(str(error).split())[:200]}") from error
        finally:
            row.encoder.train(was_training)


def run_table(rows: Sequence[Row], protocols: Sequence[Protocol], ctx: EvalContext, *, tower: str,
              cache: CellCache | None = None, scope: Mapping[str, Any] | None = None,
              progress: Callable[[int], Progress] = Progress) -> ResultTable:
    """Measure every applicable (row, protocol); ``scope`` (dataset, seed, …) joins each cache key."""
    check_rows(rows, ctx)
    base = {**(scope or {}), "train": subset_identity(ctx.train_set), "test": subset_identity(ctx.test_set),
            "tower": tower}
    per_row = [p for p in protocols if p.scope in ("rows", "objective")]
    baselines = [p for p in protocols if p.scope == "baseline"]
    shown = progress(len(rows) * len(per_row) + len(baselines))
    table = ResultTable(dataset=ctx.dataset_name, tower=tower, train_samples=len(ctx.train_set),
                        test_samples=len(ctx.test_set), protocols=[p.name for p in protocols])
    for row in rows:
        cells: dict[str, Cell] = {}
        dim = None
        for protocol in per_row:
            reason = protocol.skip_reason(ctx, row)
            if reason is not None:
                shown.step(row.name, f"{protocol.name} (skipped)")
                if not reason.startswith("n/a"):  # "n/a: …" is expected (no fine-tuning of raw pixels)
                    table.notes.append(f"{protocol.name} on '{row.name}': skipped ({reason})")
                continue
            key = {**base, "row": row.identity, "name": row.name, "protocol": protocol.name,
                   "settings": protocol.settings} if row.cacheable else None
            found = cache.get(key) if cache is not None and key is not None else None
            shown.step(row.name, protocol.name, cached=found is not None)
            if found is None:
                found = protocol.measure(ctx, row)
                if cache is not None and key is not None:
                    cache.put(key, found)
            cells[protocol.name] = found
            dim = found.get("details", {}).get("dim", dim)
        ctx.forget(row)
        table.rows.append({"name": row.name, "kind": row.kind, "dim": dim, "cells": cells})
    for protocol in baselines:
        key = {**base, "protocol": protocol.name, "settings": protocol.settings}
        found_rows = cache.get(key) if cache is not None else None
        shown.step(protocol.name, protocol.compares_with or protocol.name, cached=found_rows is not None)
        if found_rows is None:
            found_rows = {"rows": [[name, c] for name, c in protocol.baseline_rows(ctx)]}
            if cache is not None:
                cache.put(key, found_rows)
        for name, c in found_rows["rows"]:
            column = protocol.compares_with or protocol.name
            table.rows.append({"name": name, "kind": "baseline", "dim": c.get("details", {}).get("dim"),
                               "cells": {column: c}})
            if column not in table.protocols:
                table.protocols.append(column)
    return table
