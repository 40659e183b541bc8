"""Pair any two (or more) registered datasets into one cross-modal dataset, with no pair special-cased.

``pair_by: label`` forms benchmark-style pairs: each item of the first source is matched with a seeded random item
of the *same split* of every other source that has the same label (AV-MNIST: MNIST digit ↔ FSDD recording of that
digit). ``pair_by: index`` zips sources item by item (sources built from one manifest, e.g. image and caption
columns of the same CSV). Pairs never cross splits: the train split pairs train items only, test pairs test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch.utils.data import Dataset

from omnissl.core.instantiate import build_component
from omnissl.core.config import Component
from omnissl.core.errors import ConfigError, DataError
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle


def _labels(dataset: Dataset[Any], name: str) -> torch.Tensor:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = [dataset[i]["y"] for i in range(len(dataset))]  # type: ignore[arg-type]
    labels = torch.as_tensor(labels).long()
    if labels.ndim != 1:
        raise DataError(f"data.sources.{name}: pairing by label needs one label per item, got {tuple(labels.shape)}")
    return labels


class PairedDataset(Dataset[dict[str, Any]]):
    """Item ``i`` = ``{"x": {name: source item x}, "y": label of the first source, "index": i}``."""

    def __init__(self, sources: dict[str, Dataset[Any]], *, pair_by: Literal["label", "index"], seed: int,
                 split: str) -> None:
        self.sources = sources
        names = list(sources)
        anchor = names[0]
        size = len(sources[anchor])  # type: ignore[arg-type]
        self.partner: dict[str, torch.Tensor] = {anchor: torch.arange(size)}
        generator = torch.Generator().manual_seed(seed)
        if pair_by == "index":
            for name in names[1:]:
                if len(sources[name]) != size:  # type: ignore[arg-type]
                    raise DataError(f"data.sources: pair_by index needs equal sizes; {split} split has {size} "
                                    f"'{anchor}' items but {len(sources[name])} '{name}' items")  # type: ignore[arg-type]
                self.partner[name] = torch.arange(size)
            self.labels = _labels(sources[anchor], anchor)
            return
        self.labels = _labels(sources[anchor], anchor)
        for name in names[1:]:
            other = _labels(sources[name], name)
            pools = {int(c): (other == c).nonzero().flatten() for c in self.labels.unique()}
            missing = [c for c, pool in pools.items() if len(pool) == 0]
            if missing:
                raise DataError(f"data.sources.{name}: the {split} split has no item with label(s) {missing} "
                                f"to pair with '{anchor}'")
            choice = torch.empty(size, dtype=torch.long)
            for c, pool in pools.items():
                members = (self.labels == c).nonzero().flatten()
                picks = torch.randint(0, len(pool), (len(members),), generator=generator)
                choice[members] = pool[picks]
            self.partner[name] = choice

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, Any]:
        items = {name: self.sources[name][int(self.partner[name][index])] for name in self.sources}
        return {"items": items, "y": self.labels[index], "index": index}


class PairedCollate:
    """Each source's own collate on its items, then ``{"x": {name: batch x}, "y", "index"}``."""

    def __init__(self, collates: dict[str, Any]) -> None:
        self.collates = collates

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        x = {name: collate([s["items"][name] for s in samples])["x"] for name, collate in self.collates.items()}
        return {"x": x, "y": torch.stack([torch.as_tensor(s["y"]) for s in samples]),
                "index": torch.as_tensor([s["index"] for s in samples])}


@DATASETS.register("paired", modality="multimodal", description="pair registered datasets by label or index",
                   example_params={"sources": {"image": {"name": "digits"}, "other": {"name": "digits"}}})
def paired(*, sources: dict[str, dict[str, Any]], pair_by: Literal["label", "index"] = "label",
           data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """``sources`` maps a tower name to a dataset spec (``{name: mnist}``); tower names must match ``towers``."""
    if len(sources) < 2:
        raise ConfigError(f"data.sources: pairing needs at least two sources, got {len(sources)}")
    bundles: dict[str, DataBundle] = {}
    for name, spec in sources.items():
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError(f"data.sources.{name}: expected a dataset spec with 'name', got {spec!r}")
        context: dict[str, Any] = {"data_root": data_root, "seed": seed}
        if synthetic is not None:
            context["synthetic"] = synthetic
        bundles[name] = build_component(DATASETS, Component(**spec), f"data.sources.{name}", context)
    if synthetic is not None:  # synthetic sources need a shared label set to pair by
        pair_by = "label"
    splits = {}
    for split in ("train", "test"):
        parts = {name: getattr(bundle, split) for name, bundle in bundles.items()}
        if any(part is None for part in parts.values()):
            splits[split] = None
            continue
        splits[split] = PairedDataset(parts, pair_by=pair_by, seed=seed + (0 if split == "train" else 1),
                                      split=split)
    first = next(iter(bundles.values()))
    return DataBundle(train=splits["train"], test=splits["test"],
                      collate=PairedCollate({name: b.collate for name, b in bundles.items()}),
                      num_classes=first.num_classes,
                      input_spec={name: b.input_spec for name, b in bundles.items()},
                      description=" ↔ ".join(f"{name}: {b.description}" for name, b in bundles.items()))
