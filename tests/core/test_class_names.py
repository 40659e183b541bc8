"""DataBundle.class_names (issue 22 item 2): every builder that knows its classes' names publishes them, in label
order, so reports show "airplane" and ">50K" instead of 0 and 1; a third-party bundle without names still works."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from omnissl.core.errors import DataError
from omnissl.core.registry import DATASETS, load_plugins
from omnissl.core.types import DataBundle, class_name

CIFAR10 = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
DIGITS = [str(d) for d in range(10)]


def build(name: str, **params: Any) -> DataBundle:
    load_plugins()
    entry = DATASETS.get(name)
    if "data_root" not in entry.signature.parameters:  # e.g. digits ship inside scikit-learn
        params.pop("data_root", None)
    return entry.builder(**params)


def test_the_field_defaults_to_none_and_falls_back_to_the_input_spec() -> None:
    plain = DataBundle(train=[], test=None, collate=list, num_classes=3)
    assert plain.class_names is None and class_name(names=plain.class_names, label=2) == "2"
    older = DataBundle(train=[], test=None, collate=list, num_classes=2, input_spec={"class_names": ("no", "yes")})
    assert older.class_names == ["no", "yes"] and class_name(names=older.class_names, label=1) == "yes"
    with pytest.raises(DataError, match="3 class names .* num_classes=2"):
        DataBundle(train=[], test=None, collate=list, num_classes=2, class_names=["a", "b", "c"], description="x")


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("cifar10", {"synthetic": 20}, CIFAR10),
    ("digits", {}, DIGITS),
    ("mnist", {}, DIGITS),
    ("fsdd", {"max_train": 20}, DIGITS),
    ("fsdd", {"label": "speaker", "max_train": 20}, None),  # the speakers' names, checked below
    ("ag_news", {"synthetic": 8}, ["0", "1", "2", "3"]),
    ("sst2", {"tokenizer_vocab_size": 200}, ["negative", "positive"]),
    ("ucr_uea", {"dataset": "GunPoint"}, ["1", "2"]),
    ("adult", {"max_train": 200, "max_test": 100}, ["<=50K", ">50K"]),
    ("sklearn_tabular", {"dataset": "breast_cancer"}, ["malignant", "benign"]),
])
def test_builders_publish_class_names(name: str, params: dict[str, Any], expected: list[str] | None,
                                      data_root: Path) -> None:
    bundle = build(name, data_root=data_root, **params)
    assert bundle.class_names is not None and len(bundle.class_names) == bundle.num_classes
    if expected is not None:
        assert bundle.class_names == expected
    else:
        assert all(isinstance(n, str) and not n.isdigit() for n in bundle.class_names), bundle.class_names


def test_ag_news_names_are_the_four_topics(data_root: Path) -> None:
    bundle = build("ag_news", data_root=data_root, tokenizer_vocab_size=200)
    assert bundle.class_names == ["World", "Sports", "Business", "Sci/Tech"]


def test_folder_and_file_builders_take_names_from_the_data(tmp_path: Path) -> None:
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "pets" / "train" / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / "pets" / "train" / label / f"{i}.png")
    assert build("image_folder", root="pets", image_size=8, data_root=tmp_path).class_names == ["cat", "dog"]
    (tmp_path / "reviews.csv").write_text("text,label\n" + "".join(f"text {i},{'good' if i % 2 else 'bad'}\n"
                                                                  for i in range(10)))
    text = build("text_file", train="reviews.csv", tokenizer_vocab_size=60, data_root=tmp_path)
    assert text.class_names == ["bad", "good"]
    for label in ("no", "yes"):
        (tmp_path / "audio" / label).mkdir(parents=True)
        for i in range(5):
            with wave.open(str(tmp_path / "audio" / label / f"{i}.wav"), "wb") as out:
                out.setnchannels(1), out.setsampwidth(2), out.setframerate(8000)
                out.writeframes((np.sin(np.arange(800) * (i + 1)) * 3000).astype(np.int16).tobytes())
    audio = build("audio_folder", root="audio", sample_rate=8000, test_fraction=0.4, data_root=tmp_path)
    assert audio.class_names == ["no", "yes"]
