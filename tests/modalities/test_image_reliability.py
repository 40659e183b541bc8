"""Image readers refuse or report bad input instead of shifting labels, clipping values or dropping files
(reliability audit F3, F12, F13, F15, F17, F18). Each test builds a tiny tree or npz under ``tmp_path``."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from omnissl.core.errors import DataError
from omnissl.core.paths import outside_paths
from omnissl.core.registry import DATASETS

image_npz = DATASETS.get("image_npz").builder
image_folder = DATASETS.get("image_folder").builder


def _tree(base: Path, layout: dict[str, str], *, count: int = 2) -> None:
    """``{"train": "abc", "test": "ac"}``: one folder per letter, images coloured by the letter (red = ord)."""
    for split, classes in layout.items():
        for c in classes:
            (base / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", (12, 12), (ord(c), i, 0)).save(base / split / c / f"{i}.png")


def _npz(path: Path, *, n: int = 6, shape: tuple[int, ...] = (8, 8), labels: object = None,
         compressed: bool = False) -> Path:
    x = np.random.default_rng(0).integers(0, 256, (n, *shape), dtype=np.uint8)
    y = np.arange(n) % 3 if labels is None else np.asarray(labels)
    (np.savez_compressed if compressed else np.savez)(path, x=x, y=y)
    return path


# ---------------------------------------------------------------- F3: one class index for both splits


def test_image_folder_test_split_uses_the_train_class_index(tmp_path: Path, caplog) -> None:
    _tree(tmp_path / "f", {"train": "abc", "test": "ac"})
    with caplog.at_level(logging.WARNING):
        bundle = image_folder(root="f", image_size=8, data_root=tmp_path)
    red_to_label = {(int(x[0, 0, 0]), int(y)) for x, y in zip(bundle.test.images, bundle.test.labels)}
    assert red_to_label == {(ord("a"), 0), (ord("c"), 2)} and bundle.num_classes == 3
    assert "'b'" in caplog.text and "test" in caplog.text


def test_image_folder_test_class_absent_from_train_is_an_error(tmp_path: Path) -> None:
    _tree(tmp_path / "f", {"train": "ab", "test": "abz"})
    with pytest.raises(DataError, match=r"test.z.*'z'.*not.*train"):
        image_folder(root="f", image_size=8, data_root=tmp_path)


# ---------------------------------------------------------------- F18: empty trees name the folder


def test_image_folder_empty_class_folder_names_the_folder(tmp_path: Path) -> None:
    _tree(tmp_path / "f", {"train": "ab"})
    (tmp_path / "f" / "train" / "empty").mkdir()
    with pytest.raises(DataError, match=r"train.empty: no images"):
        image_folder(root="f", image_size=8, data_root=tmp_path)


def test_image_folder_without_class_folders_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "f" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match=r"f.train: no class folders"):
        image_folder(root="f", image_size=8, data_root=tmp_path)


# ---------------------------------------------------------------- F17: nothing skipped or clipped silently


def test_image_folder_decodes_gif_and_jfif_and_reports_unsupported_files(tmp_path: Path, caplog) -> None:
    _tree(tmp_path / "f", {"train": "ab"}, count=3)
    Image.new("RGB", (12, 12), (9, 9, 9)).save(tmp_path / "f" / "train" / "a" / "g.gif")
    Image.new("RGB", (12, 12), (9, 9, 9)).save(tmp_path / "f" / "train" / "a" / "j.jfif", format="JPEG")
    (tmp_path / "f" / "train" / "b" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        bundle = image_folder(root="f", image_size=8, data_root=tmp_path)
    assert len(bundle.train) == 8
    assert "1 file" in caplog.text and "notes.txt" in caplog.text


def test_image_folder_16_bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    (tmp_path / "f" / "train" / "a").mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(tmp_path / "f" / "train" / "a" / "deep.png")
    Image.fromarray(np.full((8, 8), 1000, dtype=np.uint16)).save(tmp_path / "f" / "train" / "a" / "dim.png")
    bundle = image_folder(root="f", image_size=8, data_root=tmp_path)
    values = sorted(int(v) for v in bundle.train.images[:, 0, 0, 0])
    assert values == [1000 >> 8, 40000 >> 8]


# ---------------------------------------------------------------- F12: corrupt npz → DataError naming the file


def _half(b: bytes) -> bytes:
    return b[: len(b) // 2]


def _overwrite_data(b: bytes, path: Path) -> bytes:
    info = zipfile.ZipFile(path).getinfo("x.npy")
    out = bytearray(b)
    start = info.header_offset + 30 + len(info.filename) + 200
    out[start:start + 100] = bytes(range(100))
    return bytes(out)


@pytest.mark.parametrize("corrupt", ["half", "last30", "bad_crc", "compressed_zeroed", "empty"])
def test_image_npz_corrupt_files_raise_data_error_naming_the_file(tmp_path: Path, corrupt: str) -> None:
    good = _npz(tmp_path / "good.npz", n=20, shape=(16, 16), compressed=corrupt == "compressed_zeroed")
    data = good.read_bytes()
    broken = {"half": lambda: _half(data), "last30": lambda: data[:-30], "bad_crc": lambda: _overwrite_data(data, good),
              "compressed_zeroed": lambda: data[:100] + bytes(64) + data[164:], "empty": lambda: b""}[corrupt]()
    (tmp_path / "bad.npz").write_bytes(broken)
    with pytest.raises(DataError, match=r"bad\.npz"):
        image_npz(train="bad.npz", data_root=tmp_path)


def test_image_npz_zero_samples_is_an_error(tmp_path: Path) -> None:
    _npz(tmp_path / "none.npz", n=0)
    with pytest.raises(DataError, match=r"none\.npz: no images"):
        image_npz(train="none.npz", data_root=tmp_path)


# ---------------------------------------------------------------- F13: labels are checked


def test_image_npz_non_integer_labels_are_an_error(tmp_path: Path) -> None:
    _npz(tmp_path / "f.npz", labels=[0, 1, 2, 3.7, 1, 0])
    with pytest.raises(DataError, match=r"f\.npz: 'y' row 3.*3\.7"):
        image_npz(train="f.npz", data_root=tmp_path)


def test_image_npz_integral_float_labels_load_faithfully(tmp_path: Path) -> None:
    _npz(tmp_path / "f.npz", labels=[0.0, 1.0, 2.0, 2.0, 1.0, 0.0])
    assert image_npz(train="f.npz", data_root=tmp_path).train.labels.tolist() == [0, 1, 2, 2, 1, 0]


def test_image_npz_negative_labels_are_an_error(tmp_path: Path) -> None:
    _npz(tmp_path / "neg.npz", labels=[0, 1, -1, 0, 1, 2])
    with pytest.raises(DataError, match=r"neg\.npz: 'y' row 2.*-1"):
        image_npz(train="neg.npz", data_root=tmp_path)


def test_image_npz_labels_at_or_above_num_classes_are_an_error(tmp_path: Path) -> None:
    _npz(tmp_path / "tr.npz", labels=[0, 1, 2, 0, 1, 2])
    _npz(tmp_path / "te.npz", labels=[0, 1, 9, 0, 1, 2])
    with pytest.raises(DataError, match=r"tr\.npz: 'y' row 2.*num_classes=2"):
        image_npz(train="tr.npz", num_classes=2, data_root=tmp_path)
    with pytest.raises(DataError, match=r"te\.npz: 'y' row 2.*9.*num_classes=3"):
        image_npz(train="tr.npz", test="te.npz", num_classes=3, data_root=tmp_path)


def test_image_npz_test_layout_must_match_train(tmp_path: Path) -> None:
    _npz(tmp_path / "grey.npz", shape=(28, 28))
    _npz(tmp_path / "colour.npz", shape=(32, 32, 3))
    with pytest.raises(DataError, match=r"colour\.npz.*\(3, 32, 32\).*grey\.npz.*\(1, 28, 28\)"):
        image_npz(train="grey.npz", test="colour.npz", data_root=tmp_path)


def test_image_npz_test_labels_absent_from_train_are_an_error(tmp_path: Path) -> None:
    _npz(tmp_path / "tr.npz", labels=[0, 1, 2, 0, 1, 2])
    _npz(tmp_path / "te.npz", labels=[0, 42, 2, 42, 1, 2])
    with pytest.raises(DataError, match=r"te\.npz: 2 rows have labels.*42.*not.*train"):
        image_npz(train="tr.npz", test="te.npz", data_root=tmp_path)


# ---------------------------------------------------------------- F15: paths stay in the data root


def test_image_builders_confine_paths_to_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _npz(root / "in.npz")
    _npz(tmp_path / "out.npz")
    _tree(tmp_path / "tree", {"train": "ab"})
    with pytest.raises(DataError, match="data.train"):
        image_npz(train="../out.npz", data_root=root)
    with pytest.raises(DataError, match="data.test"):
        image_npz(train="in.npz", test=str(tmp_path / "out.npz"), data_root=root)
    with pytest.raises(DataError, match="data.root"):
        image_folder(root="../tree", image_size=8, data_root=root)
    with outside_paths(True):
        assert len(image_npz(train="../out.npz", data_root=root).train) == 6
        assert len(image_folder(root="../tree", image_size=8, data_root=root).train) == 4


def test_image_folder_images_beside_train_and_test_are_an_error(tmp_path: Path) -> None:
    _tree(tmp_path / "f", {"train": "ab", "extra": "c"})
    with pytest.raises(DataError, match=r"extra.c.0\.png: image outside"):
        image_folder(root="f", image_size=8, data_root=tmp_path)
