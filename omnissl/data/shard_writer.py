"""Writing shards: WebDataset tars of encoded members, or Parquet row files, plus ``manifest.json`` (samples per
shard, sha256 per shard, classes, fields). A user converts once and streams from then on.

The output folder must not exist yet (nothing is ever overwritten or appended to). Shards are written under a
temporary name and renamed when complete, the manifest last, so a crash leaves no half shard that looks whole and
no manifest: a folder without ``manifest.json`` is an unfinished conversion. Samples should arrive shuffled
(:func:`omnissl.cli.shard` shuffles with a seed): a stream's shuffle buffer mixes within a shard only.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from omnissl.core.errors import DataError
from omnissl.data.shardlist import MANIFEST
from omnissl.data.shardread import file_sha256

Sample = tuple[str, dict[str, Any]]  # bytes members; Parquet rows may also hold cells (float, str, None)


def _write_tar(path: Path, samples: Sequence[Sample]) -> None:
    with tarfile.open(path, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, fields in samples:
            for ext, data in fields.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o444, 0  # mtime 0: same input, same bytes
                tar.addfile(info, io.BytesIO(data))


def _write_parquet(path: Path, samples: Sequence[Sample]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {"__key__": [key for key, _ in samples]}
    names = sorted({ext for _, fields in samples for ext in fields})
    for ext in names:
        values = [fields.get(ext) for _, fields in samples]
        # text members stay readable strings in Parquet; media stay bytes; table cells (float, str, None) as given
        if ext in ("txt", "text", "caption", "cls", "label"):
            values = [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
        columns[ext] = values
    pq.write_table(pa.table(columns), path)


def write_shards(samples: Iterable[Sample], *, out: Path, shard_size: int, format: str = "webdataset",
                 classes: Sequence[str] | None = None, prefix: str = "shard",
                 extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``samples`` (``(key, {ext: bytes})``, keys unique, no dots) into ``out/``; returns the manifest."""
    if shard_size < 1:
        raise DataError(f"--shard-size must be at least 1, got {shard_size}")
    if out.exists():
        raise DataError(f"{out} already exists; omnissl shard never overwrites or adds to a folder — choose a new "
                        f"--out or remove the old one")
    out.mkdir(parents=True)
    suffix, write = (".parquet", _write_parquet) if format == "parquet" else (".tar", _write_tar)
    entries: list[dict[str, Any]] = []
    fields: set[str] = set()
    seen: set[str] = set()
    pending: list[Sample] = []

    def flush() -> None:
        name = f"{prefix}-{len(entries):06d}{suffix}"
        partial = out / f".{name}.partial"
        write(partial, pending)
        os.replace(partial, out / name)
        entries.append({"name": name, "samples": len(pending), "sha256": file_sha256(out / name)})
        pending.clear()

    for key, members in samples:
        if "." in key.rpartition("/")[2] or not key or key in seen:
            raise DataError(f"sample key {key!r}: keys must be unique, non-empty and have no dot (webdataset "
                            f"splits the member name at its first dot)")
        seen.add(key)
        if not members:
            raise DataError(f"sample '{key}' has no members")
        fields.update(members)
        pending.append((key, members))
        if len(pending) == shard_size:
            flush()
    if pending:
        flush()
    if not entries:
        raise DataError(f"{out}: the source holds no samples; nothing written")
    manifest: dict[str, Any] = {"format": format, "samples": sum(e["samples"] for e in entries),
                                "fields": sorted(fields), "classes": list(classes) if classes else None,
                                "shards": entries, **(extra or {})}
    staging = out / f".{MANIFEST}.partial"
    staging.write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    os.replace(staging, out / MANIFEST)
    return manifest
