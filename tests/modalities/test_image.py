from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from omnissl.core.errors import DataError
from omnissl.core.registry import AUGMENTATIONS, DATASETS, ENCODERS

IMAGE_OPS = [e.name for e in AUGMENTATIONS.entries() if e.modality == "image"]


def _batch(b: int = 16, c: int = 3, s: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (b, c, s, s), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", IMAGE_OPS)
def test_op_keeps_shape_and_range_and_returns_float(name: str) -> None:
    op = AUGMENTATIONS.get(name).builder()
    for channels in (1, 3):
        x = _batch(c=channels)
        y = op(x)
        assert y.shape == x.shape and y.dtype == torch.float32
        assert y.min() >= 0 and y.max() <= 1
        assert op(x.float() / 255).shape == x.shape  # float input works too


@pytest.mark.parametrize("name", IMAGE_OPS)
def test_op_draws_per_sample_parameters(name: str) -> None:
    params = {"p": 0.5} if "p" in AUGMENTATIONS.get(name).signature.parameters else {}
    op = AUGMENTATIONS.get(name).builder(**params)
    image = _batch(b=1)
    batch = image.expand(32, -1, -1, -1).contiguous()  # 32 copies of one image
    torch.manual_seed(1)
    out = op(batch)
    distinct = torch.unique(out.reshape(32, -1), dim=0).shape[0]
    assert distinct > 1, f"{name} treated every sample of the batch the same"


def test_random_resized_crop_output_size_and_content() -> None:
    crop = AUGMENTATIONS.get("random_resized_crop").builder(size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    x = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(4, 3, 32, 32)
    y = crop(x)
    assert y.shape == (4, 3, 16, 16)
    # Full-area, square crop of a horizontal ramp: still a ramp left to right.
    assert torch.all(y[:, :, :, 1:] >= y[:, :, :, :-1] - 1e-5)


def test_flip_with_p1_mirrors_exactly() -> None:
    x = _batch()
    assert torch.equal(AUGMENTATIONS.get("horizontal_flip").builder(p=1.0)(x), x.float().div(255).flip(-1))


def test_grayscale_p1_gives_equal_channels() -> None:
    y = AUGMENTATIONS.get("random_grayscale").builder(p=1.0)(_batch())
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 1], y[:, 2])


def test_solarize_p1_inverts_above_threshold() -> None:
    x = torch.tensor([0.2, 0.6]).view(1, 1, 1, 2).expand(2, 3, 2, 2).contiguous()
    y = AUGMENTATIONS.get("solarize").builder(threshold=0.5, p=1.0)(x)
    assert torch.allclose(y[..., 0], torch.full_like(y[..., 0], 0.2))
    assert torch.allclose(y[..., 1], torch.full_like(y[..., 1], 0.4))


def test_npz_reader_errors_name_the_file(tmp_path: Path) -> None:
    bad_dtype = tmp_path / "float.npz"
    np.savez(bad_dtype, x=np.zeros((2, 4, 4, 3), dtype=np.float32), y=np.zeros(2))
    with pytest.raises(DataError, match=r"float\.npz: 'x' must be uint8"):
        DATASETS.get("image_npz").builder(train="float.npz", data_root=tmp_path)
    mismatch = tmp_path / "mismatch.npz"
    np.savez(mismatch, x=np.zeros((3, 4, 4, 3), dtype=np.uint8), y=np.zeros(2))
    with pytest.raises(DataError, match=r"mismatch\.npz: 'y' must be \(N,\) with N=3"):
        DATASETS.get("image_npz").builder(train="mismatch.npz", data_root=tmp_path)
    with pytest.raises(DataError, match="not found"):
        DATASETS.get("image_npz").builder(train="missing.npz", data_root=tmp_path)


def test_npz_round_trip_keeps_every_sample(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(7) % 2)
    bundle = DATASETS.get("image_npz").builder(train="d.npz", test="d.npz", data_root=tmp_path)
    assert len(bundle.train) == 7 and bundle.input_spec["image_size"] == 8
    assert torch.equal(bundle.train.images[3], torch.from_numpy(x[3]).permute(2, 0, 1))


def test_cifar10_and_mnist_load_from_the_data_root(data_root: Path) -> None:
    cifar = DATASETS.get("cifar10").builder(data_root=data_root)
    assert len(cifar.train) == 10_000 and len(cifar.test) == 10_000
    assert cifar.train.images.shape[1:] == (3, 32, 32)
    assert torch.bincount(cifar.train.labels).tolist() == [1000] * 10
    mnist = DATASETS.get("mnist").builder(data_root=data_root)
    assert len(mnist.train) + len(mnist.test) == 10_000
    assert set(mnist.train.labels.unique().tolist()) == set(range(10))


def test_image_folder_reads_a_tree_and_names_a_corrupt_file(tmp_path: Path) -> None:
    from PIL import Image

    for split in ("train", "test"):
        for label in ("cat", "dog"):
            (tmp_path / "pets" / split / label).mkdir(parents=True)
            for i in range(2):
                Image.new("RGB", (20, 12), color=(i * 100, 50, 0)).save(tmp_path / "pets" / split / label / f"{i}.png")
    bundle = DATASETS.get("image_folder").builder(root="pets", image_size=8, data_root=tmp_path)
    assert bundle.train.images.shape == (4, 3, 8, 8) and bundle.num_classes == 2
    (tmp_path / "pets" / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        DATASETS.get("image_folder").builder(root="pets", image_size=8, data_root=tmp_path)


def test_vit_runs_on_a_subset_of_tokens() -> None:
    vit = ENCODERS.get("vit").builder(image_size=16, patch_size=4, dim=32, depth=2, heads=2)
    x = _batch(b=2, s=16)
    sequence = vit.tokenize(x)
    assert sequence.tokens.shape == (2, 16, 32)
    sequence.tokens = sequence.tokens[:, :4]
    out = vit.encode_tokens(sequence, return_hidden_states=True)
    assert out.tokens.shape == (2, 4, 32) and out.pooled.shape == (2, 32)
    assert len(out.hidden_states) == 2
    assert vit.reconstruction_target(x).shape == (2, 16, 4 * 4 * 3)


@pytest.mark.parametrize("name,dim", [("resnet10", 256), ("resnet18", 512), ("resnet50", 2048)])
def test_resnet_dims_and_cifar_stem(name: str, dim: int) -> None:
    encoder = ENCODERS.get(name).builder(cifar_stem=True)
    assert encoder.embed_dim == (dim if name != "resnet10" else 32 * 8)
    assert encoder(_batch(b=2)).pooled.shape == (2, encoder.embed_dim)


def test_vit_accepts_smaller_crops_by_interpolating_positions() -> None:
    vit = ENCODERS.get("vit").builder(image_size=32, patch_size=4, dim=32, depth=1, heads=2)
    full = vit(_batch(b=2, s=32))
    local = vit(_batch(b=2, s=16))  # a 16×16 multi-crop view: 4×4 grid instead of 8×8
    assert full.tokens.shape == (2, 64, 32) and local.tokens.shape == (2, 16, 32)
    assert torch.equal(vit.positions(8, 8), vit.position)
