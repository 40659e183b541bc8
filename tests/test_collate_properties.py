"""Property tests over the plugins' collate functions: random batch sizes, lengths and dtypes never crash with a
foreign exception, keep every sample (nothing dropped), and pad only where a sample is shorter."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnissl.core.errors import OmnisslError
from omnissl_image.data import collate_images
from omnissl_speech.data import collate_audio
from omnissl_text.collate import PadCollate

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
lengths = st.lists(st.integers(1, 40), min_size=1, max_size=8)


@SETTINGS
@given(lengths=lengths, pad=st.integers(0, 3))
def test_text_padding_keeps_every_token(lengths: list[int], pad: int) -> None:
    samples = [{"input_ids": torch.arange(5, 5 + n), "y": i % 2, "index": i} for i, n in enumerate(lengths)]
    batch = PadCollate(pad)(samples)
    ids, attention = batch["x"]["input_ids"], batch["x"]["attention_mask"]
    assert ids.shape == (len(lengths), max(lengths)) and batch["index"].tolist() == list(range(len(lengths)))
    assert attention.sum(dim=1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert torch.equal(ids[row, :n], torch.arange(5, 5 + n)) and (ids[row, n:] == pad).all()


@SETTINGS
@given(lengths=lengths, dtype=st.sampled_from([torch.float32, torch.float64, torch.float16]))
def test_audio_padding_masks_exactly_the_padded_samples(lengths: list[int], dtype: torch.dtype) -> None:
    samples = [{"x": torch.ones(n, dtype=dtype), "y": 0, "index": i} for i, n in enumerate(lengths)]
    try:
        batch = collate_audio(samples)
    except OmnisslError:
        return
    wave, padding = batch["x"]["wave"], batch["x"]["padding_mask"]
    assert wave.shape == (len(lengths), max(lengths))
    assert (~padding).sum(dim=1).tolist() == lengths
    assert torch.equal(wave[~padding], torch.ones(sum(lengths)))


@SETTINGS
@given(batch=st.integers(1, 6), channels=st.sampled_from([1, 3]), size=st.integers(1, 12))
def test_image_collate_stacks_every_sample(batch: int, channels: int, size: int) -> None:
    samples = [{"x": torch.full((channels, size, size), i, dtype=torch.uint8), "y": i, "index": i}
               for i in range(batch)]
    out = collate_images(samples)
    assert out["x"].shape == (batch, channels, size, size) and out["x"].dtype == torch.uint8
    assert out["x"][:, 0, 0, 0].tolist() == list(range(batch)) and out["y"].tolist() == list(range(batch))
