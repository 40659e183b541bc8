"""Lazy ``audio_folder`` / ``audio_manifest`` / ``text_file`` (issue 19): building the bundle decodes nothing (the
decode calls are counted), a fetched sample equals the in-memory path's, and the size threshold picks the path."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from omnissl_speech import audio_io
from omnissl_speech import data as speech_data
from omnissl_speech.data import AudioDataset, audio_folder, audio_manifest
from omnissl_speech.lazy import LazyAudioDataset
from omnissl_text import lazy as text_lazy
from omnissl_text.data import text_file
from omnissl_text.lazy import LazyTextDataset

from omnissl.core.errors import DataError


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("no", "yes"):
            for i in range(3):
                path = tmp_path / "clips" / split / label / f"{i}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                soundfile.write(str(path), rng.uniform(-0.5, 0.5, 400 + 100 * i).astype(np.float32), 16000)
    return tmp_path


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every audio file read through either path, in order."""
    calls: list[Path] = []
    real = audio_io.read_audio

    def counting(path: Path, *, sample_rate: int) -> torch.Tensor:
        calls.append(Path(path))
        return real(path, sample_rate=sample_rate)

    monkeypatch.setattr(audio_io, "read_audio", counting)
    monkeypatch.setattr(speech_data, "read_audio", counting)
    return calls


def test_lazy_audio_folder_decodes_nothing_up_front_and_matches_memory(clips: Path, decodes: list[Path]) -> None:
    lazy = audio_folder(root="clips", sample_rate=8000, in_memory=False, data_root=clips)
    assert decodes == [] and isinstance(lazy.train, LazyAudioDataset) and len(lazy.train) == 6
    eager = audio_folder(root="clips", sample_rate=8000, in_memory=True, data_root=clips)
    assert isinstance(eager.train, AudioDataset) and len(decodes) == 12
    decodes.clear()
    batch, reference = lazy.train.__getitems__([4, 0, 2]), eager.train.__getitems__([4, 0, 2])
    assert len(decodes) == 3 and decodes[0] == Path(lazy.train.names[4])
    assert torch.equal(batch["x"]["wave"], reference["x"]["wave"])
    assert torch.equal(batch["x"]["padding_mask"], reference["x"]["padding_mask"])
    assert batch["y"].tolist() == reference["y"].tolist() and batch["index"].tolist() == [4, 0, 2]
    assert lazy.class_names == eager.class_names and lazy.test is not None and len(lazy.test) == 6
    assert "decoded per sample" in lazy.description
    # through the bundle's collate, as a DataLoader worker sees it (the dataset pickles into workers)
    copy = pickle.loads(pickle.dumps(lazy.train))
    single = lazy.collate([copy[1], copy[3]])
    assert single["x"]["wave"].shape[0] == 2 and single["y"].tolist() == [int(lazy.train.labels[1]),
                                                                          int(lazy.train.labels[3])]


def test_auto_threshold_keeps_a_small_folder_in_memory(clips: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(audio_folder(root="clips", data_root=clips).train, AudioDataset)
    monkeypatch.setattr("omnissl_speech.lazy.IN_MEMORY_FILE_BYTES", 100)  # the folder is now "large"
    assert isinstance(audio_folder(root="clips", data_root=clips).train, LazyAudioDataset)


def test_lazy_audio_manifest_and_a_bad_file_named_when_fetched(clips: Path, decodes: list[Path]) -> None:
    rows = ["path,label"] + [f"clips/train/{label}/{i}.wav,{label}" for label in ("no", "yes") for i in range(3)]
    (clips / "train.csv").write_text("\n".join(rows) + "\n")
    bundle = audio_manifest(train="train.csv", in_memory=False, data_root=clips)
    assert decodes == [] and isinstance(bundle.train, LazyAudioDataset) and bundle.class_names == ["no", "yes"]
    sample = bundle.train[5]
    assert sample["x"].numel() == 600 and int(sample["y"]) == 1 and len(decodes) == 1
    (clips / "clips" / "train" / "no" / "1.wav").write_bytes(b"RIFF not really audio")
    broken = audio_manifest(train="train.csv", in_memory=False, data_root=clips)  # still nothing decoded
    with pytest.raises(DataError, match=r"no/1\.wav: cannot decode audio"):
        broken.train[1]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


WORDS = ["good film", "bad plot", "great acting", "poor script", "fine music", "weak ending", "nice cast", "dull"]


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Rows read from the file and rows tokenised per sample by the lazy dataset."""
    counts = {"text": 0, "encode": 0}
    real_text, real_encode = LazyTextDataset.text, LazyTextDataset.encode

    def text(self: LazyTextDataset, index: int) -> str:
        counts["text"] += 1
        return real_text(self, index)

    def encode(self: LazyTextDataset, index: int) -> torch.Tensor:
        counts["encode"] += 1
        return real_encode(self, index)

    monkeypatch.setattr(LazyTextDataset, "text", text)
    monkeypatch.setattr(LazyTextDataset, "encode", encode)
    return counts


def test_lazy_text_file_tokenises_per_sample_and_matches_memory(tmp_path: Path, reads: dict[str, int]) -> None:
    rows = [{"text": f"{w} number {i}", "label": ["neg", "pos"][i % 2]} for i, w in enumerate(WORDS * 2)]
    _jsonl(tmp_path / "train.jsonl", rows)
    _jsonl(tmp_path / "test.jsonl", rows[:4])
    common = {"train": "train.jsonl", "test": "test.jsonl", "tokenizer_vocab_size": 60, "max_length": 16,
              "data_root": tmp_path}
    lazy = text_file(in_memory=False, tokenizer_examples=len(rows), **common)
    # the tokeniser's fit reads the first tokenizer_examples rows; no sample is tokenised up front
    assert isinstance(lazy.train, LazyTextDataset) and reads == {"text": len(rows), "encode": 0}
    eager = text_file(in_memory=True, **common)  # fitted on the same rows, so the ids must agree
    for i in (0, 5, 15):
        sample = lazy.train[i]
        assert torch.equal(sample["input_ids"], eager.train[i]["input_ids"])
        assert int(sample["y"]) == int(eager.train[i]["y"])
    assert reads["encode"] == 3 and lazy.class_names == eager.class_names == ["neg", "pos"]
    batch = lazy.collate([lazy.test[0], lazy.test[3]])
    assert batch["x"]["input_ids"].shape[0] == 2 and batch["index"].tolist() == [0, 3]
    assert pickle.loads(pickle.dumps(lazy.train))[2]["input_ids"].shape == eager.train[2]["input_ids"].shape


def test_lazy_text_reads_only_the_tokenizer_examples_and_splits_without_test(tmp_path: Path,
                                                                              reads: dict[str, int]) -> None:
    (tmp_path / "corpus.txt").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(WORDS * 3).encode() + b"\r\n")
    bundle = text_file(train="corpus.txt", in_memory=False, tokenizer_examples=4, tokenizer_vocab_size=60,
                       data_root=tmp_path)
    assert reads == {"text": 4, "encode": 0}
    assert len(bundle.train) + len(bundle.test) == 24 and bundle.class_names == ["0"]
    assert bundle.train.text(0) == WORDS[0]  # BOM and CRLF are not part of the text


def test_lazy_text_errors_name_file_and_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _jsonl(tmp_path / "bad.jsonl", [{"text": "ok", "label": 1}, {"text": "", "label": 0}])
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: column 'text' is empty"):
        text_file(train="bad.jsonl", in_memory=False, data_root=tmp_path)
    _jsonl(tmp_path / "nolabel.jsonl", [{"text": "ok", "label": 1}, {"text": "fine"}])
    with pytest.raises(DataError, match=r"nolabel\.jsonl: line 2: missing label"):
        text_file(train="nolabel.jsonl", in_memory=False, data_root=tmp_path)
    (tmp_path / "rows.csv").write_text("text,label\n\"two\nlines\",1\n")
    with pytest.raises(DataError, match="Convert it to JSONL"):
        text_file(train="rows.csv", in_memory=False, data_root=tmp_path)
    monkeypatch.setattr(text_lazy, "IN_MEMORY_FILE_BYTES", 1)
    monkeypatch.setattr("omnissl_text.data.IN_MEMORY_FILE_BYTES", 1)  # unset in_memory: the big-file path
    _jsonl(tmp_path / "ok.jsonl", [{"text": w, "label": i % 2} for i, w in enumerate(WORDS)])
    assert isinstance(text_file(train="ok.jsonl", tokenizer_vocab_size=60, data_root=tmp_path).train,
                      LazyTextDataset)


def test_lazy_sets_decode_in_a_dataloader_worker(clips: Path, tmp_path: Path) -> None:
    """The index, the tokeniser and the open-file cache cross into a worker; batches equal the in-process ones."""
    from omnissl.data.tensors import training_loader

    _jsonl(tmp_path / "rows.jsonl", [{"text": w, "label": i % 2} for i, w in enumerate(WORDS)])
    text = text_file(train="rows.jsonl", in_memory=False, tokenizer_vocab_size=60, data_root=tmp_path)
    audio = audio_folder(root="clips", in_memory=False, data_root=clips)
    text.train.text(0)  # a file handle opened in the parent must not be shared with the worker
    for bundle, key in ((text, "input_ids"), (audio, "wave")):
        batches = [next(iter(training_loader(bundle.train, bundle, batch_size=3, seed=0, start_batch=0,
                                             num_workers=workers))) for workers in (0, 1)]
        assert torch.equal(batches[0]["x"][key], batches[1]["x"][key])
        assert batches[0]["index"].tolist() == batches[1]["index"].tolist()
