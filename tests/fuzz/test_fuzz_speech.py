"""Property tests of the speech readers (``fsdd``'s npz, ``audio_folder``, ``audio_manifest``): random bytes,
truncations and overwrites of a valid file, non-finite samples, odd arrays and odd CSV rows either load faithfully
(every recording written is loaded) or raise ``DataError`` naming the file; never another exception."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fuzzing import logged_messages
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from omnissl_speech.data import audio_folder, audio_manifest, fsdd

from omnissl.core.errors import DataError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.usefixtures("one_thread")
COUNT = 8


def _fsdd_arrays() -> dict[str, np.ndarray]:
    lengths = 20 + np.arange(COUNT) * 3
    return {"audio": (np.arange(lengths.sum()) % 50 - 25).astype(np.int16),
            "offsets": np.concatenate([[0], np.cumsum(lengths)[:-1]]), "lengths": lengths,
            "digit": (np.arange(COUNT) % 10).astype(np.int8), "speaker": (np.arange(COUNT) % 6).astype(np.int8),
            "speaker_names": np.array(list("abcdef")), "index": np.arange(COUNT, dtype=np.int16),
            "split": (np.arange(COUNT) % 4 == 0).astype(np.int8),
            "filename": np.array([f"clip{i}.wav" for i in range(COUNT)]), "sample_rate": np.array(8000)}


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


VALID = _npz_bytes(_fsdd_arrays())


def _fsdd_or_data_error(data: bytes, label: str = "digit") -> object:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "fsdd").mkdir()
        (Path(folder) / "fsdd" / "fsdd.npz").write_bytes(data)
        try:
            return fsdd(data_root=Path(folder), label=label)
        except DataError as error:
            event("DataError")
            assert "fsdd.npz" in str(error), str(error)
            return None


@SETTINGS
@given(cut=st.just(len(VALID)) | st.integers(0, len(VALID)),
       flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=4),
       noise=st.none() | st.binary(max_size=300))
@example(cut=0, flips=[], noise=None)
@example(cut=len(VALID), flips=[], noise=None)
def test_fsdd_bytes_truncations_and_overwrites(cut: int, flips: list[tuple[int, int]], noise: bytes | None) -> None:
    data = bytearray(VALID if noise is None else noise)
    for position, value in flips:
        if position < len(data):
            data[position] = value
    bundle = _fsdd_or_data_error(bytes(data[:cut]))
    if bundle is not None:
        assert len(bundle.train) + len(bundle.test) == COUNT


mutations = st.one_of(
    st.tuples(st.just("drop"), st.sampled_from(sorted(_fsdd_arrays()))),
    st.tuples(st.just("shorten"), st.sampled_from(["offsets", "lengths", "digit", "split", "filename"])),
    st.tuples(st.just("float_audio"), st.sampled_from([0.5, np.nan, np.inf])),
    *(st.tuples(st.just(key), st.lists(values, min_size=COUNT, max_size=COUNT)) for key, values in (
        ("digit", st.integers(-1, 10)), ("speaker", st.integers(0, 6)), ("split", st.sampled_from([0, 0, 1, 2])),
        ("offsets", st.integers(-1, 220)), ("lengths", st.integers(-1, 40)))),
)


@SETTINGS
@given(mutation=mutations, label=st.sampled_from(["digit", "speaker"]))
def test_fsdd_array_mutations_load_faithfully_or_raise(mutation: tuple[str, object], label: str) -> None:
    arrays = _fsdd_arrays()
    kind, value = mutation
    if kind == "drop":
        del arrays[value]
    elif kind == "shorten":
        arrays[value] = arrays[value][:-2]
    elif kind == "float_audio":
        arrays["audio"] = arrays["audio"].astype(np.float32)
        arrays["audio"][3] = value
    else:
        arrays[kind] = np.array(value, dtype=arrays[kind].dtype if kind in ("offsets", "lengths") else np.int16)
    bundle = _fsdd_or_data_error(_npz_bytes(arrays), label=label)
    if bundle is None:
        return
    assert len(bundle.train) + (len(bundle.test) if bundle.test is not None else 0) == COUNT
    loaded = [*bundle.train.waves, *(bundle.test.waves if bundle.test is not None else [])]
    assert sorted(w.numel() for w in loaded) == sorted(arrays["lengths"].tolist())
    split = arrays["split"]
    train_rows = np.flatnonzero(split == 0)
    assert bundle.train.labels.tolist() == arrays[label][train_rows].tolist()


def _wav_bytes(kind: str, payload: object) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    if kind == "float":  # a float WAV whose sample 5 is payload (0.25, NaN or Inf)
        wave = np.full(200, 0.1, dtype=np.float32)
        wave[5] = payload
        soundfile.write(buffer, wave, 8000, format="WAV", subtype="FLOAT")
        return buffer.getvalue(), ".wav"
    if kind == "noise":
        return bytes(payload), ".wav"
    if kind == "other":
        return b"not audio", payload
    soundfile.write(buffer, np.full(300, 0.2, dtype=np.float32), 8000, format="WAV", subtype="PCM_16")
    data = buffer.getvalue()
    return (data if kind == "wav" else data[: int(payload) % len(data)]), ".wav"


clips = st.lists(st.one_of(
    st.tuples(st.just("wav"), st.none()),
    st.tuples(st.just("cut"), st.integers(0, 700)),
    st.tuples(st.just("float"), st.sampled_from([0.25, np.nan, np.inf, -np.inf])),
    st.tuples(st.just("noise"), st.binary(max_size=120)),
    st.tuples(st.just("other"), st.sampled_from([".m4a", ".txt", ".aac"])),
), min_size=0, max_size=4)


@SETTINGS
@given(tree=st.dictionaries(st.sampled_from(["no", "yes"]), clips, max_size=2))
def test_audio_folder_loads_every_clip_whole_counts_the_rest_or_raises(
        tree: dict[str, list[tuple[str, object]]]) -> None:
    with logged_messages("omnissl.speech") as messages, tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "clips"
        base.mkdir()
        names, lengths, others = [], [], 0
        for label in sorted(tree):
            (base / label).mkdir()
            for i, (kind, payload) in enumerate(tree[label]):
                data, suffix = _wav_bytes(kind, payload)
                (base / label / f"c{i}{suffix}").write_bytes(data)
                names.append(f"c{i}{suffix}")
                others += kind == "other"
                lengths += {"wav": [300], "float": [200]}.get(kind, [])
        try:
            bundle = audio_folder(root="clips", sample_rate=8000, test_fraction=0.3, data_root=Path(folder))
        except DataError as error:
            event("DataError")
            assert any(part in str(error) for part in [*names, "clips"]), str(error)
            return
    loaded = [*bundle.train.waves, *(bundle.test.waves if bundle.test is not None else [])]
    assert sorted(w.numel() for w in loaded) == sorted(lengths)  # only whole clips load, and every one of them
    skipped = " ".join(m for m in messages if "skipped" in m)
    assert (f"skipped {others} file" in skipped) if others else not skipped


cells = st.one_of(st.sampled_from(["a/0.wav", "a/1.wav", "missing.wav", "", "../../outside.wav", "/etc/hostname"]),
                  st.text(max_size=6))
rows = st.lists(st.lists(cells, min_size=1, max_size=4), max_size=5)


@SETTINGS
@given(header=st.sampled_from([["path", "label"], ["path", "label", "speaker"], ["label", "path"], ["path"]]),
       rows=rows, bom=st.booleans(), stray=st.none() | st.tuples(st.integers(0, 400), st.integers(0x80, 0xFF)))
@example(header=["path", "label"], rows=[["a/0.wav", "up"], ["a/1.wav", "down", "EXTRA"]], bom=False, stray=None)
@example(header=["path", "label"], rows=[["a/0.wav", "up"]], bom=True, stray=(20, 0xE9))
def test_audio_manifest_rows_load_faithfully_or_raise(header: list[str], rows: list[list[str]], bom: bool,
                                                      stray: tuple[int, int] | None) -> None:
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    data = bytearray(text.getvalue().encode("utf-8-sig" if bom else "utf-8"))
    if stray is not None and data:
        data.insert(stray[0] % len(data), stray[1])  # a byte >= 0x80 never adds a field or a row
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for i in range(2):
            (root / "a").mkdir(exist_ok=True)
            soundfile.write(str(root / "a" / f"{i}.wav"), np.full(160, 0.1, dtype=np.float32), 8000)
        (root / "m.csv").write_bytes(bytes(data))
        try:
            bundle = audio_manifest(train="m.csv", sample_rate=8000, data_root=root)
        except DataError as error:  # names the manifest, or the audio file a row points at
            event("DataError")
            named = [str(root / row[0]) for row in rows if row and row[0].strip()]
            assert "m.csv" in str(error) or any(name in str(error) for name in named), str(error)
            return
    assert len(bundle.train) == sum(1 for row in rows if row)  # csv writes [] as a blank line, which holds no clip
