"""Image datasets held in memory as uint8 ``(N, C, H, W)`` tensors, fetched a whole batch at a time.

Sources: ``.npz`` arrays (``x`` uint8 HWC or HW, ``y``), ImageFolder trees, torchvision datasets by name (their own
download code, only when ``download: true``), the shared CIFAR-10 subset and MNIST, and scikit-learn's bundled
digits (no download at all: the offline demo).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.errors import DataError
from omnissl.core.paths import resolve_data_path
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle
from omnissl.data.samples import OnError, fetch_or_skip
from omnissl.data.tensors import TensorRows, collate_rows
from omnissl_image import folder
from omnissl_image.folder import IMAGE_SUFFIXES, SplitFiles, class_index, load_split, scan_split
from omnissl_image.readers import check_test_split, read_npz

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(d) for d in range(10))


class ImageTensorDataset(TensorRows):
    """uint8 images ``(N, C, H, W)`` and int64 labels ``(N,)``: the shared :class:`TensorRows`, shape-checked."""

    def __init__(self, images: Tensor, labels: Tensor, *, source: str = "") -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(f"{source}: images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        super().__init__(images, labels, source=source)

    @property
    def images(self) -> Tensor:
        return self.x  # type: ignore[return-value]


collate_images = collate_rows  # the name recipes' tests and older plugins import


def flatten_pixels(x: Tensor) -> Tensor:
    """The raw-pixel baseline: ``(B, C, H, W)`` → ``(B, C·H·W)`` in [0, 1]."""
    return x.float().div(255).reshape(x.shape[0], -1)


def channel_stats(images: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    sample = images[: min(len(images), 5000)].float().div(255)
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(round(v, 4) for v in mean.tolist()), tuple(round(v, 4) for v in std.tolist())


def make_bundle(train: ImageTensorDataset, test: ImageTensorDataset | None, *, num_classes: int,
                description: str, class_names: Sequence[str] | None = None) -> DataBundle:
    mean, std = channel_stats(train.images)
    spec = {"in_channels": int(train.images.shape[1]), "image_size": int(train.images.shape[-1]),
            "mean": mean, "std": std, "num_classes": num_classes}
    if class_names is not None:
        spec["class_names"] = tuple(class_names)
    return DataBundle(train=train, test=test, collate=collate_images, num_classes=num_classes, input_spec=spec,
                      raw_features=flatten_pixels, description=description,
                      class_names=list(class_names) if class_names is not None else None)


def synthetic_images(count: int, *, channels: int, size: int, num_classes: int, seed: int) -> ImageTensorDataset:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, channels, size, size), dtype=torch.uint8, generator=generator)
    return ImageTensorDataset(images, torch.arange(count) % num_classes, source="synthetic")


def seeded_split(images: Tensor, labels: Tensor, *, test_fraction: float, seed: int,
                 source: str) -> tuple[ImageTensorDataset, ImageTensorDataset]:
    """A fixed, stratified split (each class split in the same proportion)."""
    generator = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for label in labels.unique():
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = int(round(len(members) * test_fraction))
        test_idx.append(members[:cut])
        train_idx.append(members[cut:])
    tr, te = torch.cat(train_idx).sort().values, torch.cat(test_idx).sort().values
    return (ImageTensorDataset(images[tr], labels[tr], source=source),
            ImageTensorDataset(images[te], labels[te], source=source))


@DATASETS.register("image_npz", modality="image", description="images from .npz files (x uint8 HWC, y)")
def image_npz(*, train: str, test: str | None = None, num_classes: int | None = None, data_root: Path = Path("."),
              synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Paths are read inside the data root (``$OMNISSL_DATA_DIR``, see :mod:`omnissl.core.paths`).

    Labels are checked at load time (integers in ``0..num_classes-1``; test labels must occur in train; both files
    one image layout), so a bad file fails here, not at evaluation after training.
    """
    if synthetic is not None:
        classes = num_classes or 10
        fake = synthetic_images(synthetic, channels=3, size=32, num_classes=classes, seed=seed)
        return make_bundle(fake, fake, num_classes=classes, description="synthetic images")
    train_path = resolve_data_path(data_root, train, key="data.train")
    train_x, train_y = read_npz(path=train_path, num_classes=num_classes)
    test_set = None
    if test:
        test_path = resolve_data_path(data_root, test, key="data.test")
        test_x, test_y = read_npz(path=test_path, num_classes=num_classes)
        check_test_split(train_images=train_x, train_labels=train_y, train_path=train_path, test_images=test_x,
                         test_labels=test_y, test_path=test_path)
        test_set = ImageTensorDataset(test_x, test_y, source=str(test_path))
    classes = num_classes or int(train_y.max()) + 1
    return make_bundle(ImageTensorDataset(train_x, train_y, source=str(train_path)), test_set, num_classes=classes,
                       description=f"{train} / {test}")


@DATASETS.register("cifar10", modality="image", description="CIFAR-10: shared 10k train subset + 10k test")
def cifar10(*, data_root: Path = Path("."), max_train: int | None = None, synthetic: int | None = None,
            seed: int = 0) -> DataBundle:
    if synthetic is not None:
        fake = synthetic_images(synthetic, channels=3, size=32, num_classes=10, seed=seed)
        return make_bundle(fake, fake, num_classes=10, description="synthetic CIFAR-10", class_names=CIFAR10_CLASSES)
    folder = data_root / "cifar10"
    train_x, train_y = read_npz(path=folder / "cifar10_train_10k.npz", num_classes=10)
    if max_train is not None:
        train_x, train_y = train_x[:max_train], train_y[:max_train]
    test_path = folder / "cifar10_test.npz"
    test = ImageTensorDataset(*read_npz(path=test_path, num_classes=10), source=str(test_path))
    return make_bundle(ImageTensorDataset(train_x, train_y, source=str(folder)), test, num_classes=10,
                       description="CIFAR-10 (10k train subset, full test)", class_names=CIFAR10_CLASSES)


@DATASETS.register("mnist", modality="image", description="MNIST test set split 80/20 (seeded, stratified)")
def mnist(*, data_root: Path = Path("."), test_fraction: float = 0.2, synthetic: int | None = None,
          seed: int = 0) -> DataBundle:
    """Only MNIST's official *test* split is available offline; it is split into train/test here."""
    if synthetic is not None:
        fake = synthetic_images(synthetic, channels=1, size=28, num_classes=10, seed=seed)
        return make_bundle(fake, fake, num_classes=10, description="synthetic MNIST", class_names=DIGIT_CLASSES)
    path = data_root / "mnist" / "mnist_test.npz"
    train, test = seeded_split(*read_npz(path=path, num_classes=10), test_fraction=test_fraction, seed=seed,
                               source=str(path))
    return make_bundle(train, test, num_classes=10, description="MNIST official test split, re-split 80/20",
                       class_names=DIGIT_CLASSES)


@DATASETS.register("digits", modality="image", description="scikit-learn's bundled 8×8 digits (offline demo)")
def digits(*, test_fraction: float = 0.25, upscale: int = 16, synthetic: int | None = None,
           seed: int = 0) -> DataBundle:
    """1,797 greyscale digits shipped inside scikit-learn, scaled 0–16 → 0–255 and resized to ``upscale``."""
    if synthetic is not None:
        fake = synthetic_images(synthetic, channels=1, size=upscale, num_classes=10, seed=seed)
        return make_bundle(fake, fake, num_classes=10, description="synthetic digits", class_names=DIGIT_CLASSES)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float().mul(255 / 16).unsqueeze(1)
    images = torch.nn.functional.interpolate(images, size=upscale, mode="bilinear", align_corners=False)
    images = images.round().clamp(0, 255).to(torch.uint8)
    train, test = seeded_split(images, torch.from_numpy(bunch.target), test_fraction=test_fraction, seed=seed,
                               source="sklearn digits")
    return make_bundle(train, test, num_classes=10, description="scikit-learn digits, 75/25 split",
                       class_names=DIGIT_CLASSES)


# Below this many decoded bytes (N·3·S², 256 MiB ≈ 21k images at 64 px) a folder is decoded once into memory:
# each step then costs one gather instead of B decodes. Provisional; benchmarks/data_pipeline.py measures both.
IN_MEMORY_BYTES = 256 * 2**20
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class LazyImageFolder(Dataset[dict[str, Any]]):
    """An index of image paths and labels; each image is decoded and resized (shorter side to ``image_size``,
    centre crop) when fetched, i.e. in the DataLoader workers. Memory: one path and one label per image.
    An undecodable file is a :class:`DataError` naming it; ``on_error="skip"`` leaves it out of its batch, which
    then carries ``skipped`` (counted like shard skips: ``data/skipped`` in metrics.jsonl)."""

    def __init__(self, paths: Sequence[Path], labels: Tensor, *, image_size: int, on_error: OnError = "raise",
                 source: str = "") -> None:
        self.paths, self.labels, self.image_size = [str(p) for p in paths], labels.long(), image_size
        self.on_error, self.source = on_error, source

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = folder.decode_image(path=Path(self.paths[index]), image_size=self.image_size)
        return {"x": image, "y": self.labels[index], "index": index}

    def _decode(self, index: int) -> Tensor:
        return folder.decode_image(path=Path(self.paths[index]), image_size=self.image_size)

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        images, kept = fetch_or_skip(self._decode, indices, on_error=self.on_error, source=self.source)
        index = torch.as_tensor(kept, dtype=torch.long)
        return {"x": torch.stack(images), "y": self.labels[index], "index": index,
                "skipped": torch.tensor(len(indices) - len(kept))}


def _lazy_split(split: SplitFiles, folder_path: Path, index: dict[str, int], image_size: int,
                on_error: OnError) -> LazyImageFolder:
    folder.report_unsupported(split=split, folder=folder_path)
    paths = [path for files in split.by_class.values() for path in files]
    labels = [index[name] for name, files in split.by_class.items() for _ in files]
    return LazyImageFolder(paths, torch.tensor(labels, dtype=torch.long), image_size=image_size, on_error=on_error,
                           source=str(folder_path))


@DATASETS.register("image_folder", modality="image", description="ImageFolder trees: ROOT/train/CLASS/*.png …")
def image_folder(*, root: str, image_size: int = 64, in_memory: bool | None = None, data_root: Path = Path("."),
                 synthetic: int | None = None, seed: int = 0, on_error: OnError = "raise") -> DataBundle:
    """``root/train/<class>/<image>`` and optionally ``root/test/<class>/<image>``, resized to ``image_size``.

    ``in_memory``: ``true`` decodes every image once into a uint8 tensor (channel mean/std measured on it);
    ``false`` keeps only the paths and decodes per sample in the workers (ImageNet mean/std, as nothing is decoded
    up front); unset: in memory when the decoded split fits in ``IN_MEMORY_BYTES``. ``on_error: skip``
    leaves undecodable files out of their batches, counted in ``data/skipped`` (lazy only: with it, unset
    ``in_memory`` means lazy); by default, or with ``in_memory: true``, one is a ``DataError`` naming the file.
    """
    if synthetic is not None:
        fake = synthetic_images(synthetic, channels=3, size=image_size, num_classes=2, seed=seed)
        return make_bundle(fake, fake, num_classes=2, description="synthetic folder")
    base = resolve_data_path(data_root, root, key="data.root")
    train_dir, test_dir = base / "train", base / "test"
    if not train_dir.is_dir():
        raise DataError(f"{base}: expected a 'train' folder with one sub-folder per class")
    stray = sorted(p for p in base.rglob("*") if p.is_file() and p.relative_to(base).parts[0] not in ("train", "test")
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if stray:  # they would be left out without a word
        raise DataError(f"{stray[0]}: image outside {train_dir} and {test_dir} ({len(stray)} such files)")
    train_files = scan_split(folder=train_dir)
    test_files = scan_split(folder=test_dir) if test_dir.is_dir() else None
    index = class_index(train=train_files, test=test_files, train_dir=train_dir, test_dir=test_dir)
    count = sum(len(files) for files in train_files.by_class.values())
    if in_memory is None:
        # only the lazy path can leave a file out, so a skip policy keeps even a small folder lazy
        in_memory = count * 3 * image_size**2 <= IN_MEMORY_BYTES and on_error != "skip"
    if not in_memory:
        lazy_test = _lazy_split(test_files, test_dir, index, image_size, on_error) if test_files is not None else None
        spec = {"in_channels": 3, "image_size": image_size, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                "num_classes": len(index), "class_names": tuple(sorted(index))}
        return DataBundle(train=_lazy_split(train_files, train_dir, index, image_size, on_error), test=lazy_test,
                          collate=collate_rows, num_classes=len(index), input_spec=spec, raw_features=flatten_pixels,
                          description=f"image folder {base} (decoded per sample)", class_names=sorted(index))
    train = ImageTensorDataset(*load_split(split=train_files, folder=train_dir, index=index, image_size=image_size),
                               source=str(train_dir))
    test = None
    if test_files is not None:
        test = ImageTensorDataset(*load_split(split=test_files, folder=test_dir, index=index, image_size=image_size),
                                  source=str(test_dir))
    return make_bundle(train, test, num_classes=len(index), description=f"image folder {base}",
                       class_names=sorted(index))


@DATASETS.register("torchvision", modality="image", description="a torchvision dataset by name (download opt-in)")
def torchvision_dataset(*, dataset: str, download: bool = False, data_root: Path = Path("."),
                        synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """E.g. ``dataset: CIFAR10``; files go under the data root. Nothing is downloaded unless ``download: true``."""
    if synthetic is not None:
        fake = synthetic_images(synthetic, channels=3, size=32, num_classes=10, seed=seed)
        return make_bundle(fake, fake, num_classes=10, description=f"synthetic {dataset}")
    import torchvision.datasets as tvd

    if not hasattr(tvd, dataset):
        raise DataError(f"data.dataset: torchvision has no dataset '{dataset}'")
    factory = getattr(tvd, dataset)
    folder = resolve_data_path(data_root, dataset.lower(), key="data.dataset")

    def load(train: bool) -> ImageTensorDataset:
        try:
            ds = factory(root=str(folder), train=train, download=download)
        except RuntimeError as error:
            raise DataError(f"{dataset}: {error} (set download: true to fetch it)") from error
        x = torch.as_tensor(np.asarray(ds.data))
        x = x.unsqueeze(-1) if x.ndim == 3 else x
        names.extend([] if names else [str(c) for c in getattr(ds, "classes", None) or []])
        return ImageTensorDataset(x.permute(0, 3, 1, 2).contiguous().to(torch.uint8),
                                  torch.as_tensor(np.asarray(ds.targets)), source=dataset)

    names: list[str] = []  # torchvision's own `classes` list, when the dataset has one
    train = load(True)
    classes = int(train.labels.max()) + 1
    return make_bundle(train, load(False), num_classes=classes, description=dataset,
                       class_names=names if len(names) == classes else None)

from omnissl_image import shard_codec  # noqa: E402,F401  (registers the shard field codec; here, as the plugin imports this module)
