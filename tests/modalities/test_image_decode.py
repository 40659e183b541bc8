"""The native (torchvision.io) decode path gives PIL's pixels and hands everything else to PIL (issue 19)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from omnissl_image.folder import decode_image, decode_native, decode_pil
from omnissl_image.shard_codec import decode_image_bytes, synthetic_jpegs
from PIL import Image

from omnissl.core.errors import DataError


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _gradient(size: int = 20) -> np.ndarray:
    ramp = np.arange(size * size * 3, dtype=np.int64).reshape(size, size, 3)
    return (ramp * 7 % 256).astype(np.uint8)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1"])
def test_png_modes_decode_to_the_pil_rgb_pixels(mode: str) -> None:
    data = _png(Image.fromarray(_gradient()).convert(mode))
    native = decode_native(data)
    assert native is not None and native.dtype == torch.uint8 and native.shape == (3, 20, 20)
    assert torch.equal(native, decode_pil(data, where="x.png"))


def test_jpeg_decodes_natively_to_the_pil_pixels() -> None:
    data = synthetic_jpegs(1, size=48, seed=3)[0]
    native = decode_native(data)
    assert native is not None and native.shape == (3, 48, 48)
    assert (native.int() - decode_pil(data, where="x.jpg").int()).abs().max() <= 1  # same libjpeg-turbo decode


def test_other_inputs_go_to_pil() -> None:
    sixteen = _png(Image.fromarray(_gradient()[..., 0].astype(np.uint16) * 257))
    assert sixteen[24] == 16 and decode_native(sixteen) is None
    top_bits = decode_image_bytes(sixteen, image_size=20, where="deep.png")
    assert torch.equal(top_bits[0], torch.from_numpy(_gradient()[..., 0]))  # >> 8 keeps the 8-bit picture
    buffer = io.BytesIO()
    Image.fromarray(_gradient()).save(buffer, format="BMP")
    assert decode_native(buffer.getvalue()) is None
    assert decode_image_bytes(buffer.getvalue(), image_size=10, where="x.bmp").shape == (3, 10, 10)


@pytest.mark.parametrize("cut", [10, 300])
def test_broken_jpeg_is_a_named_error(cut: int) -> None:
    data = synthetic_jpegs(1, size=64, seed=0)[0][:cut]
    assert decode_native(data) is None
    with pytest.raises(DataError, match="shard-7/key-3.jpg: cannot decode image"):
        decode_image_bytes(data, image_size=32, where="shard-7/key-3.jpg")


def test_folder_file_decodes_resizes_and_names_broken_files(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    good.write_bytes(_png(Image.fromarray(np.zeros((40, 60, 3), dtype=np.uint8) + 9)))
    out = decode_image(path=good, image_size=16)
    assert out.shape == (3, 16, 16) and out.dtype == torch.uint8 and int(out.float().mean().round()) == 9
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + b"x" * 50)
    with pytest.raises(DataError, match="broken.jpg: cannot decode image"):
        decode_image(path=broken, image_size=16)
    with pytest.raises(DataError, match="missing.png: cannot read image"):
        decode_image(path=tmp_path / "missing.png", image_size=16)
