"""Property tests of the image readers (``image_npz`` — also behind ``cifar10``/``mnist`` — and ``image_folder``):
random bytes, truncations and overwrites of a valid file, odd labels and non-image files either load faithfully
(every sample written is loaded, unchanged) or raise ``DataError`` naming the file; never another exception."""

from __future__ import annotations

import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from fuzzing import logged_messages
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from omnissl.core.errors import DataError
from omnissl.core.registry import DATASETS

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
image_npz = DATASETS.get("image_npz").builder
image_folder = DATASETS.get("image_folder").builder
pytestmark = pytest.mark.usefixtures("one_thread")


def _valid_npz(n: int = 5) -> tuple[bytes, np.ndarray, np.ndarray]:
    x = np.random.default_rng(n).integers(0, 256, (n, 6, 6, 3), dtype=np.uint8)
    y = np.arange(n) % 3
    buffer = BytesIO()
    np.savez(buffer, x=x, y=y)
    return buffer.getvalue(), x, y


VALID, VALID_X, VALID_Y = _valid_npz()


def _load_or_data_error(data: bytes) -> object:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "fuzz.npz").write_bytes(data)
        try:
            return image_npz(train="fuzz.npz", data_root=Path(folder))
        except DataError as error:
            event("DataError")
            assert "fuzz.npz" in str(error)
            return None


@SETTINGS
@given(data=st.binary(max_size=600))
@example(data=b"")
@example(data=b"PK\x03\x04")
def test_image_npz_random_bytes_raise_data_error(data: bytes) -> None:
    assert _load_or_data_error(data) is None


@SETTINGS
@given(cut=st.just(len(VALID)) | st.integers(0, len(VALID)), flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1),
                                                                 st.integers(0, 255)), max_size=4))
@example(cut=len(VALID), flips=[])
def test_image_npz_truncated_or_overwritten_loads_faithfully_or_raises(cut: int,
                                                                       flips: list[tuple[int, int]]) -> None:
    data = bytearray(VALID)
    for position, value in flips:
        data[position] = value
    bundle = _load_or_data_error(bytes(data[:cut]))
    if bundle is not None:  # zip CRCs guard the arrays: whatever loads is exactly what was written
        event("loaded")
        assert len(bundle.train) == len(VALID_X)
        assert np.array_equal(bundle.train.images.permute(0, 2, 3, 1).numpy(), VALID_X)
        assert bundle.train.labels.tolist() == VALID_Y.tolist()


labels = st.one_of(
    st.lists(st.integers(-3, 12), min_size=4, max_size=4).map(np.array),
    st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=4, max_size=4).map(
        lambda v: np.array(v, dtype=np.float32)),
    st.lists(st.sampled_from([0.0, 1.0, 2.0]), min_size=4, max_size=4).map(np.array),
    st.just(np.array(["a", "b", "c", "d"])),
)


@SETTINGS
@given(y=labels, num_classes=st.one_of(st.none(), st.integers(1, 12)),
       shape=st.sampled_from([(4, 5, 5), (4, 5, 5, 3), (0, 5, 5), (4, 0, 5), (4,), (4, 5, 5, 1, 1)]))
def test_image_npz_labels_and_shapes_load_faithfully_or_raise(y: np.ndarray, num_classes: int | None,
                                                             shape: tuple[int, ...]) -> None:
    x = np.full(shape, 7, dtype=np.uint8)
    buffer = BytesIO()
    np.savez(buffer, x=x, y=y[: shape[0]])
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "lab.npz").write_bytes(buffer.getvalue())
        try:
            bundle = image_npz(train="lab.npz", num_classes=num_classes, data_root=Path(folder))
        except DataError as error:
            event("DataError")
            assert "lab.npz" in str(error)
            return
    expected = y[: shape[0]]
    assert len(bundle.train) == shape[0] and bundle.train.labels.tolist() == [int(v) for v in expected]
    assert all(float(v).is_integer() and v >= 0 for v in expected)
    assert num_classes is None or max(int(v) for v in expected) < num_classes


def _png(colour: int) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (9, 7), (colour, 255 - colour, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def _file_bytes(kind: str, payload: object) -> bytes:
    if kind == "png":
        return _png(int(payload))
    if kind == "cut":
        return _png(9)[: int(payload)]
    return bytes(payload) if kind == "noise" else b"x"


# one file: (kind, payload); kinds "png" (valid), "cut" (truncated png), "noise" (random bytes named .png),
# "other" (a non-image suffix, to be counted in the warning)
files = st.lists(st.one_of(
    st.tuples(st.just("png"), st.integers(0, 255)),
    st.tuples(st.just("cut"), st.integers(0, 60)),
    st.tuples(st.just("noise"), st.binary(max_size=80)),
    st.tuples(st.just("other"), st.sampled_from([".txt", ".heic", ".svg", ""])),
), min_size=0, max_size=4)


@SETTINGS
@given(tree=st.dictionaries(st.sampled_from(["ant", "bee", "cat"]), files, min_size=0, max_size=3))
def test_image_folder_loads_faithfully_counts_the_rest_or_raises(tree: dict[str, list[tuple[str, object]]]) -> None:
    with logged_messages("omnissl.image") as messages, tempfile.TemporaryDirectory() as folder:
        base = Path(folder) / "t" / "train"
        base.mkdir(parents=True)
        expected, written = [], []
        for name in sorted(tree):
            (base / name).mkdir()
            for i, (kind, payload) in enumerate(tree[name]):
                suffix = payload if kind == "other" else ".png"
                path = base / name / f"f{i}{suffix}"
                path.write_bytes(_file_bytes(kind, payload))
                written.append(path.name)
                if kind != "other":
                    expected.append((kind, payload))
        try:
            bundle = image_folder(root="t", image_size=6, data_root=Path(folder))
        except DataError as error:
            event("DataError")
            assert any(part in str(error) for part in [*written, *tree, "train"]), str(error)
            return
    assert len(bundle.train) == len(expected)
    for image, (kind, payload) in zip(bundle.train.images, expected):
        if kind == "png":
            assert image[:, 0, 0].tolist() == [payload, 255 - payload, 3]
    others = sum(kind == "other" for entries in tree.values() for kind, _ in entries)
    skipped = [m for m in messages if "skipped" in m]
    assert (f"skipped {others} file" in " ".join(skipped)) if others else not skipped
