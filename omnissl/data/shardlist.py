"""Which shards a recipe names, and how many samples each holds.

``shards:`` is a brace pattern (``train-{000000..000099}.tar``, expanded with ``braceexpand`` as webdataset does),
a directory (its ``manifest.json`` when present, else every ``*.tar`` / ``*.parquet`` in name order), a
manifest written by ``omnissl shard``, or a list of any of these. Local paths go through
:func:`omnissl.core.paths.resolve_data_path` like every file parameter; URLs and ``pipe:`` specs are accepted only
when the user opted in with ``--allow-outside-data-root`` (a recipe must not make the machine fetch or run
anything on its own), and then need a manifest for their sample counts.

The manifest (``manifest.json``): ``{"format": "webdataset" | "parquet", "shards": [{"name", "samples",
"sha256"}], "samples", "classes", "fields"}``, shard names relative to the manifest's folder.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnissl.core.errors import DataError
from omnissl.core.paths import outside_paths_allowed, resolve_data_path

MANIFEST = "manifest.json"
_REMOTE = ("http://", "https://", "s3://", "gs://", "pipe:")


@dataclass(frozen=True)
class Shard:
    """One shard: ``url`` is what the reader opens (a local path as text, or an opted-in URL)."""

    url: str
    samples: int
    local: Path | None
    sha256: str | None = None  # from the manifest; a local shard is checked against it when first read


@dataclass
class ShardSet:
    shards: list[Shard]
    format: str  # "webdataset" or "parquet"
    classes: list[str] | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def samples(self) -> int:
        return sum(s.samples for s in self.shards)

    def offsets(self) -> list[int]:
        """Global id of each shard's first sample (shards in list order)."""
        out, total = [], 0
        for shard in self.shards:
            out.append(total)
            total += shard.samples
        return out


def split_key(name: str) -> tuple[str, str]:
    """webdataset's rule: the key is the member path up to the first dot of its file name, the field the rest."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower() if dot else ""


def count_tar_samples(path: Path) -> int:
    """Distinct keys of a tar shard, read from its headers only (member data is skipped, not read)."""
    keys: set[str] = set()
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if member.isfile() and not member.name.rpartition("/")[2].startswith("__"):
                    keys.add(split_key(member.name)[0])
            end = tar.offset
        with open(path, "rb") as handle:
            handle.seek(end)
            marker = handle.read(1024)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{path}: not a readable, uncompressed tar shard ({type(error).__name__}: {error})") from error
    # A tar cut at a member boundary reads as a shorter, valid archive: only the end-of-archive blocks tell.
    if len(marker) < 1024 or marker.strip(b"\0"):
        raise DataError(f"{path}: tar shard has no end-of-archive marker after its last member (truncated?)")
    return len(keys)


def count_parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception as error:
        raise DataError(f"{path}: not a readable Parquet shard ({type(error).__name__}: {error})") from error


def _format_of(name: str) -> str:
    lowered = name.lower()
    if lowered.endswith((".parquet", ".pq")):
        return "parquet"
    if lowered.endswith(".tar"):  # uncompressed: random access seeks into it (media are compressed already)
        return "webdataset"
    raise DataError(f"{name}: a shard must be a .tar (WebDataset) or .parquet file")


def _listed(name: str, samples: int, *, folder: Path, key: str, sha256: str | None = None) -> Shard:
    if name.startswith(_REMOTE):
        if not outside_paths_allowed():
            raise DataError(f"{key}: manifest shard '{name}' is a URL or pipe; remote shards are read only with "
                            f"--allow-outside-data-root (a recipe cannot fetch or run anything by itself)")
        return Shard(url=name, samples=samples, local=None)
    return Shard(url=str(folder / name), samples=samples, local=folder / name, sha256=sha256)


def read_manifest(path: Path, *, key: str) -> ShardSet:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        entries = manifest["shards"]
        shards = [_listed(str(e["name"]), int(e["samples"]), folder=path.parent, key=key,
                          sha256=str(e["sha256"]).lower() if e.get("sha256") else None) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise DataError(f"{key}: {path} is not a shard manifest ({type(error).__name__}: {error})") from error
    for shard in shards:
        if shard.local is not None and not shard.local.is_file():
            raise DataError(f"{key}: shard not found: {shard.local} (listed in {path})", missing_path=shard.local)
    return ShardSet(shards=shards, format=str(manifest.get("format", "webdataset")),
                    classes=manifest.get("classes"), manifest=manifest)


def _local_shard(path: Path, *, key: str) -> Shard:
    if not path.is_file():
        raise DataError(f"{key}: shard not found: {path}", missing_path=path)
    kind = _format_of(path.name)
    count = count_parquet_rows(path) if kind == "parquet" else count_tar_samples(path)
    return Shard(url=str(path), samples=count, local=path)


def _expand(pattern: str) -> list[str]:
    import braceexpand

    return list(braceexpand.braceexpand(pattern))


def resolve_shards(spec: str | list[str], *, data_root: Path, key: str) -> ShardSet:
    """``spec`` (see the module docstring) → the shards in order, with their sample counts."""
    parts = [spec] if isinstance(spec, str) else list(spec)
    if not parts:
        raise DataError(f"{key}: no shards given")
    found: list[ShardSet] = []
    for part in parts:
        for name in _expand(str(part)):
            if name.startswith(_REMOTE):
                if not outside_paths_allowed():
                    raise DataError(f"{key}: '{name}' is a URL or pipe; remote shards are read only with "
                                    f"--allow-outside-data-root (a recipe cannot fetch or run anything by itself)")
                raise DataError(f"{key}: '{name}': remote shards need a manifest listing their sample counts; "
                                f"name the manifest (a local manifest.json whose shard names are URLs)")
            path = resolve_data_path(data_root, name, key=key)
            if path.is_dir():
                manifest = path / MANIFEST
                if manifest.is_file():
                    found.append(read_manifest(manifest, key=key))
                    continue
                files = sorted(p for p in path.iterdir() if p.is_file() and p.name != MANIFEST)
                files = [p for p in files if p.name.lower().endswith((".tar", ".parquet", ".pq"))]
                if not files:
                    raise DataError(f"{key}: {path} holds no .tar or .parquet shards")
                found.append(ShardSet(shards=[_local_shard(p, key=key) for p in files], format=_format_of(files[0].name)))
            elif path.name.endswith(".json"):
                found.append(read_manifest(path, key=key))
            else:
                found.append(ShardSet(shards=[_local_shard(path, key=key)], format=_format_of(path.name)))
    formats = {s.format for s in found}
    if len(formats) > 1:
        raise DataError(f"{key}: shards mix formats {sorted(formats)}; use one format per split")
    shards = [shard for s in found for shard in s.shards]
    empty = [s for s in shards if s.samples == 0]
    if empty:
        raise DataError(f"{key}: shard {empty[0].url} holds no samples ({len(empty)} empty shards)")
    classes = next((s.classes for s in found if s.classes), None)
    return ShardSet(shards=shards, format=found[0].format, classes=classes, manifest=found[0].manifest)
