"""Shard write → read round trips: images (folder bytes kept), image–text pairs, audio (FSDD clips), Parquet text
rows; the manifest's counts and sha256 match the files; ``omnissl shard`` refuses to overwrite."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from shardkit import WORDS, mnist_shards, png, shard_bundle

from omnissl.cli.main import main
from omnissl.data.tensors import evaluation_loader, training_loader

pytestmark = pytest.mark.usefixtures("one_thread")


def test_image_text_pairs_round_trip(data_root: Path, tmp_path: Path) -> None:
    mnist_shards(data_root, tmp_path, train=40, test=20, shard_size=10)
    bundle = shard_bundle(tmp_path, fields={"image": "png", "text": "txt"}, decode={"image": {"image_size": 28}})
    assert set(bundle.input_spec) == {"image", "text"} and bundle.num_classes == 10
    assert bundle.class_names == list(WORDS)
    batches = list(evaluation_loader(bundle.test, bundle, batch_size=8))
    images = torch.cat([b["x"]["image"] for b in batches])
    arrays = np.load(data_root / "mnist" / "mnist_test.npz")
    expected = torch.from_numpy(arrays["x"][40:60]).unsqueeze(1).expand(-1, 3, -1, -1)
    assert torch.equal(images, expected)  # PNG is lossless and 28 px needs no resize: every pixel comes back
    assert torch.equal(torch.cat([b["y"] for b in batches]), torch.from_numpy(arrays["y"][40:60]).long())
    text = bundle.input_spec["text"]
    ids = batches[0]["x"]["text"]["input_ids"]
    assert ids.shape[0] == 8 and int(ids[0, 0]) == text["cls_token_id"]
    train = next(iter(training_loader(bundle.train, bundle, batch_size=8, seed=0, start_batch=0, num_workers=0)))
    assert train["x"]["image"].shape == (8, 3, 28, 28) and train["x"]["text"]["attention_mask"].shape[0] == 8


def test_image_folder_to_shards_keeps_the_file_bytes(data_root: Path, tmp_path: Path) -> None:
    arrays = np.load(data_root / "mnist" / "mnist_test.npz")
    folder = tmp_path / "digits"
    files = {}
    for i in range(12):
        path = folder / "train" / WORDS[int(arrays["y"][i])] / f"img{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(arrays["x"][i]))
        files[path.read_bytes()] = WORDS[int(arrays["y"][i])]
    (folder / "train" / WORDS[int(arrays["y"][0])] / "notes.txt").write_text("not an image")
    assert main(["shard", str(folder), "--out", str(tmp_path / "out"), "--shard-size", "5"]) == 0
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [s["samples"] for s in manifest["shards"]] == [5, 5, 2] and manifest["samples"] == 12
    for entry in manifest["shards"]:
        digest = hashlib.sha256((tmp_path / "out" / entry["name"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"]
    from omnissl.core.config import Component
    from omnissl.core.instantiate import build_component
    from omnissl.core.registry import DATASETS
    from omnissl.data.shardlist import resolve_shards
    from omnissl.data.shardread import ShardIndex

    index = ShardIndex(resolve_shards("out", data_root=tmp_path, key="data.shards"))
    read = {index[i][1]["png"]: manifest["classes"][int(index[i][1]["cls"])] for i in range(len(index))}
    assert read == files  # same bytes, same class names
    bundle = build_component(DATASETS, Component(name="webdataset", shards="out", fields={"image": "png"}), "data",
                             {"data_root": tmp_path, "seed": 0})
    assert bundle.num_classes == len(manifest["classes"])


def test_audio_round_trip(data_root: Path, tmp_path: Path) -> None:
    import soundfile

    from omnissl.data.shard_writer import write_shards

    arrays = np.load(data_root / "fsdd" / "fsdd.npz")
    rate = int(arrays["sample_rate"])
    clips, samples = [], []
    for i in range(6):
        start, length = int(arrays["offsets"][i]), int(arrays["lengths"][i])
        pcm = arrays["audio"][start:start + length]
        buffer = io.BytesIO()
        soundfile.write(buffer, pcm, rate, format="FLAC", subtype="PCM_16")
        clips.append(torch.from_numpy(pcm.astype(np.float32) / 32768))
        samples.append((f"clip{i}", {"flac": buffer.getvalue(), "cls": str(int(arrays["digit"][i])).encode()}))
    write_shards(iter(samples), out=tmp_path / "train", shard_size=3)
    bundle = shard_bundle(tmp_path, test_shards=None, fields={"audio": "flac"},
                          decode={"audio": {"sample_rate": rate}})
    assert bundle.input_spec["sample_rate"] == rate
    batch = next(iter(training_loader(bundle.train, bundle, batch_size=3, seed=0, start_batch=0, num_workers=0)))
    waves, mask = batch["x"]["wave"], batch["x"]["padding_mask"]
    for row, gid in enumerate(batch["index"].tolist()):
        length = int((~mask[row]).sum())
        assert length == len(clips[gid]) and torch.equal(waves[row, :length], clips[gid])  # FLAC is lossless
        assert int(batch["y"][row]) == int(arrays["digit"][gid])


def test_parquet_text_rows_round_trip(data_root: Path, tmp_path: Path) -> None:
    mnist_shards(data_root, tmp_path, train=30, test=10, shard_size=10, format="parquet")
    bundle = shard_bundle(tmp_path, name="parquet_shards", fields={"text": "txt"})
    batches = list(evaluation_loader(bundle.test, bundle, batch_size=4))
    labels = torch.cat([b["y"] for b in batches])
    arrays = np.load(data_root / "mnist" / "mnist_test.npz")
    assert torch.equal(labels, torch.from_numpy(arrays["y"][30:40]).long())
    tokenizer = bundle.test.decoder.codecs["text"].info
    first = batches[0]["x"]["input_ids"][0]
    assert tokenizer.decode(first.tolist()) == f"a handwritten {WORDS[int(arrays['y'][30])]}"


def test_shard_refuses_to_overwrite(data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "mnist"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["shard", "digits", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_sample_keys_must_be_unique(tmp_path: Path) -> None:
    from omnissl.core.errors import DataError
    from omnissl.data.shard_writer import write_shards

    with pytest.raises(DataError, match="unique"):
        write_shards(iter([("a", {"txt": b"x"}), ("a", {"txt": b"y"})]), out=tmp_path / "s", shard_size=5)
