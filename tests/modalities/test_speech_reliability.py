"""Speech readers refuse or report bad input instead of tracebacks, silent truncation or dropped files and fields
(reliability audit F11, F12, F15, F17, F18). Each test writes a tiny tree, manifest or ``fsdd.npz`` under
``tmp_path``."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile

from omnissl.core.errors import DataError
from omnissl.core.paths import outside_paths
from omnissl_speech.data import audio_folder, audio_manifest, fsdd


def _wav(path: Path, frames: int = 800, value: float = 0.1, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.full(frames, value, dtype=np.float32), rate, subtype="PCM_16")
    return path


def write_fsdd(root: Path, *, count: int = 20, **override: np.ndarray) -> Path:
    """A miniature ``fsdd/fsdd.npz`` in the shared file's layout: ``count`` clips of 50–90 int16 samples."""
    lengths = 50 + (np.arange(count) * 7) % 41
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    arrays = {"audio": (np.arange(lengths.sum()) % 200 - 100).astype(np.int16), "offsets": offsets,
              "lengths": lengths, "digit": (np.arange(count) % 10).astype(np.int8),
              "speaker": (np.arange(count) % 6).astype(np.int8),
              "speaker_names": np.array(["a", "b", "c", "d", "e", "f"]), "index": np.arange(count, dtype=np.int16),
              "split": (np.arange(count) % 4 == 0).astype(np.int8),
              "filename": np.array([f"{i % 10}_x_{i}.wav" for i in range(count)]), "sample_rate": np.array(8000)}
    arrays.update(override)
    path = root / "fsdd" / "fsdd.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


# ---------------------------------------------------------------- F12: corrupt fsdd.npz


def test_fsdd_miniature_loads_every_recording(tmp_path: Path) -> None:
    write_fsdd(tmp_path)
    bundle = fsdd(data_root=tmp_path)
    assert len(bundle.train) == 15 and len(bundle.test) == 5


@pytest.mark.parametrize("corrupt", ["half", "empty", "bad_crc"])
def test_fsdd_corrupt_npz_raises_data_error_naming_the_file(tmp_path: Path, corrupt: str) -> None:
    path = write_fsdd(tmp_path)
    data = path.read_bytes()
    if corrupt == "bad_crc":
        info = zipfile.ZipFile(path).getinfo("audio.npy")
        start = info.header_offset + 30 + len(info.filename) + 150
        data = data[:start] + bytes(range(100)) + data[start + 100:]
    path.write_bytes({"half": data[: len(data) // 2], "empty": b"", "bad_crc": data}[corrupt])
    with pytest.raises(DataError, match=r"fsdd\.npz"):
        fsdd(data_root=tmp_path)


def test_fsdd_missing_labels_is_an_error(tmp_path: Path) -> None:
    write_fsdd(tmp_path, digit=(np.arange(15) % 10).astype(np.int8))
    with pytest.raises(DataError, match=r"fsdd\.npz: 'digit' has 15 entries for 20 recordings"):
        fsdd(data_root=tmp_path)


def test_fsdd_zero_recordings_is_an_error(tmp_path: Path) -> None:
    empty = np.zeros(0, dtype=np.int64)
    write_fsdd(tmp_path, offsets=empty, lengths=empty, digit=empty.astype(np.int8), speaker=empty.astype(np.int8),
               split=empty.astype(np.int8), filename=np.array([], dtype="<U4"), index=empty.astype(np.int16))
    with pytest.raises(DataError, match=r"fsdd\.npz: no recordings"):
        fsdd(data_root=tmp_path)


def test_fsdd_split_and_label_values_are_checked(tmp_path: Path) -> None:
    write_fsdd(tmp_path, split=np.array([0, 1, 2] + [0] * 17, dtype=np.int8))
    with pytest.raises(DataError, match=r"fsdd\.npz: 'split'.*2_x_2\.wav"):
        fsdd(data_root=tmp_path)
    write_fsdd(tmp_path, speaker=np.array([0, 9] + [1] * 18, dtype=np.int8))
    with pytest.raises(DataError, match=r"fsdd\.npz: 'speaker'.*1_x_1\.wav.*9"):
        fsdd(data_root=tmp_path, label="speaker")


# ---------------------------------------------------------------- F17: nothing skipped or truncated silently


def test_audio_folder_decodes_mp3_and_reports_unsupported_files(tmp_path: Path, caplog) -> None:
    for label in ("no", "yes"):
        for i in range(2):
            _wav(tmp_path / "clips" / "train" / label / f"{i}.wav")
        _wav(tmp_path / "clips" / "test" / label / "0.wav")
    soundfile.write(str(tmp_path / "clips" / "train" / "yes" / "x.mp3"), np.full(800, 0.1, np.float32), 8000)
    (tmp_path / "clips" / "train" / "no" / "x.m4a").write_bytes(b"\0\0\0 ftypM4A ")
    (tmp_path / "clips" / "test" / "no" / "notes.txt").write_text("hello")
    with caplog.at_level(logging.WARNING):
        bundle = audio_folder(root="clips", sample_rate=8000, data_root=tmp_path)
    assert len(bundle.train) == 5 and len(bundle.test) == 2
    assert "1 file" in caplog.text and "x.m4a" in caplog.text and "notes.txt" in caplog.text


def test_audio_folder_truncated_wav_is_an_error(tmp_path: Path) -> None:
    good = _wav(tmp_path / "clips" / "a" / "good.wav", frames=8000)
    _wav(tmp_path / "clips" / "b" / "ok.wav")
    (tmp_path / "clips" / "a" / "cut.wav").write_bytes(good.read_bytes()[: 44 + 2000])
    with pytest.raises(DataError, match=r"cut\.wav: truncated.*16000.*2000"):
        audio_folder(root="clips", sample_rate=8000, data_root=tmp_path)


def test_audio_folder_non_finite_samples_name_the_file(tmp_path: Path) -> None:  # F11 holds; keep it
    _wav(tmp_path / "clips" / "a" / "ok.wav")
    wave = np.full(100, 0.5, dtype=np.float32)
    wave[7] = np.inf
    soundfile.write(str(tmp_path / "clips" / "a" / "inf.wav"), wave, 8000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"inf\.wav: audio contains NaN or Inf"):
        audio_folder(root="clips", sample_rate=8000, data_root=tmp_path)


def _manifest_tree(root: Path) -> None:
    for i in range(3):
        _wav(root / "a" / f"{i}.wav")


def test_manifest_row_with_an_extra_or_missing_field_is_an_error(tmp_path: Path) -> None:
    _manifest_tree(tmp_path)
    (tmp_path / "extra.csv").write_text("path,label\na/0.wav,up\na/1.wav,down,EXTRA\n")
    with pytest.raises(DataError, match=r"extra\.csv, row 3: 3 fields.*header has 2"):
        audio_manifest(train="extra.csv", sample_rate=8000, data_root=tmp_path)
    (tmp_path / "short.csv").write_text("path,label,speaker\na/0.wav,up,ann\na/1.wav,down\n")
    with pytest.raises(DataError, match=r"short\.csv, row 3: 2 fields.*header has 3"):
        audio_manifest(train="short.csv", sample_rate=8000, data_root=tmp_path)


# ---------------------------------------------------------------- F18: encodings


def test_manifest_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    _manifest_tree(tmp_path)
    (tmp_path / "latin.csv").write_bytes("path,label\na/0.wav,up\na/1.wav,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin\.csv: line 3: bytes are not valid UTF-8"):
        audio_manifest(train="latin.csv", sample_rate=8000, data_root=tmp_path)


def test_manifest_with_utf8_bom_is_accepted(tmp_path: Path) -> None:
    _manifest_tree(tmp_path)
    (tmp_path / "bom.csv").write_text("path,label\na/0.wav,up\na/1.wav,down\n", encoding="utf-8-sig")
    bundle = audio_manifest(train="bom.csv", sample_rate=8000, data_root=tmp_path)
    assert bundle.train.labels.tolist() == [1, 0]


# ---------------------------------------------------------------- F15: paths stay in the data root


def test_speech_builders_confine_paths_to_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _manifest_tree(root)
    _wav(tmp_path / "outside" / "x" / "0.wav")
    (root / "in.csv").write_text("path,label\na/0.wav,up\n")
    (tmp_path / "out.csv").write_text("path,label\nroot/a/1.wav,up\n")
    (root / "escape.csv").write_text(f"path,label\na/0.wav,up\n{tmp_path / 'outside' / 'x' / '0.wav'},down\n")
    with pytest.raises(DataError, match="data.root"):
        audio_folder(root="../outside", data_root=root)
    with pytest.raises(DataError, match="data.train"):
        audio_manifest(train="../out.csv", data_root=root)
    with pytest.raises(DataError, match="data.test"):
        audio_manifest(train="in.csv", test=str(tmp_path / "out.csv"), data_root=root)
    with pytest.raises(DataError, match=r"escape\.csv, row 3"):
        audio_manifest(train="escape.csv", data_root=root)
    with outside_paths(True):
        assert len(audio_manifest(train="escape.csv", sample_rate=8000, data_root=root).train) == 2


def test_audio_folder_train_alone_is_split_by_its_sub_folders(tmp_path: Path) -> None:
    for label in ("no", "yes"):
        for i in range(5):
            _wav(tmp_path / "clips" / "train" / label / f"{i}.wav")
    bundle = audio_folder(root="clips", sample_rate=8000, test_fraction=0.2, data_root=tmp_path)
    assert bundle.input_spec["class_names"] == ("no", "yes") and len(bundle.train) + len(bundle.test) == 10
    _wav(tmp_path / "clips" / "maybe" / "0.wav")
    with pytest.raises(DataError, match=r"maybe.0\.wav: audio outside"):
        audio_folder(root="clips", sample_rate=8000, data_root=tmp_path)
    _wav(tmp_path / "only_test" / "test" / "no" / "0.wav")
    with pytest.raises(DataError, match="no 'train' folder"):
        audio_folder(root="only_test", sample_rate=8000, data_root=tmp_path)
