"""``hf_audio`` through the user's path: tiny random wav2vec 2.0 / HuBERT / AST / Whisper models saved with
``save_pretrained`` beside their feature extractors, loaded by a recipe override naming the local folder, giving
the embeddings plain transformers gives on the same clips. Nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from omnissl.core.config import Component, load_recipe
from omnissl.core.errors import ConfigError
from omnissl.core.instantiate import build_component
from omnissl.core.registry import ENCODERS
from omnissl.train.assemble import assemble
from omnissl.workflows.session import dry_run

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "speech" / "simclr_hf_audio_continue.yaml"


def _audio_dir(tmp_path: Path, kind: str) -> Path:
    from omnissl_speech.hf_audio import _random_model

    torch.manual_seed(0)
    model, extractor = _random_model(kind, dim=32, depth=1, heads=2)  # type: ignore[arg-type]
    folder = tmp_path / kind
    model.save_pretrained(str(folder))
    extractor.save_pretrained(str(folder))
    return folder


def _batch(rate: int = 16000) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    lengths = [int(0.6 * rate), int(0.35 * rate)]
    wave = torch.zeros(2, max(lengths))
    for row, n in enumerate(lengths):
        wave[row, :n] = 0.3 * torch.randn(n, generator=generator)
    padding = torch.arange(wave.shape[1]).unsqueeze(0) >= torch.tensor(lengths).unsqueeze(1)
    return {"wave": wave, "padding_mask": padding}


def _plain(folder: Path, kind: str, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """What a user without omnissl computes: extractor → model → mean over valid frames (AST: patch mean)."""
    import transformers as tf

    model = tf.AutoModel.from_pretrained(str(folder)).eval()
    extractor = tf.AutoFeatureExtractor.from_pretrained(str(folder))
    clips = [w[~p].numpy() for w, p in zip(batch["wave"], batch["padding_mask"])]
    if kind == "ast":
        return model(**extractor(clips, sampling_rate=16000, return_tensors="pt")).last_hidden_state[:, 2:].mean(1)
    if kind == "whisper":
        features = extractor(clips, sampling_rate=16000, return_tensors="pt")["input_features"]
        hidden = model.encoder(features).last_hidden_state
        frames = [((len(c) // 160) + 1) // 2 for c in clips]
        return torch.stack([hidden[i, :n].mean(0) for i, n in enumerate(frames)])
    inputs = extractor(clips, sampling_rate=16000, return_tensors="pt", padding=True, return_attention_mask=True)
    hidden = model(**inputs).last_hidden_state
    frames = model._get_feat_extract_output_lengths(torch.tensor([len(c) for c in clips]))
    return torch.stack([hidden[i, :n].mean(0) for i, n in enumerate(frames)])


@pytest.mark.parametrize("kind", ["wav2vec2", "hubert", "ast", "whisper"])
def test_hf_audio_folder_gives_the_same_embedding_as_plain_transformers(tmp_path: Path, kind: str) -> None:
    folder = _audio_dir(tmp_path, kind)
    encoder = build_component(ENCODERS, Component(name="hf_audio", path=str(folder)), "encoder",
                              {"sample_rate": 16000}).eval()
    batch = _batch()
    with torch.no_grad():
        out = encoder(batch)
        expected = _plain(folder, kind, batch)
    torch.testing.assert_close(out.pooled, expected, atol=2e-4, rtol=1e-4)
    assert out.tokens is not None and out.tokens.shape[-1] == encoder.embed_dim == 32
    if kind != "ast":  # the shorter clip's padded frames are marked
        assert out.padding_mask is not None and out.padding_mask[1].sum() > out.padding_mask[0].sum()


def test_an_ssl_recipe_continues_from_a_local_hubert_at_8_khz(tmp_path: Path) -> None:
    folder = _audio_dir(tmp_path, "hubert")
    recipe = load_recipe(RECIPE, [f"encoder={{name: hf_audio, path: {folder}}}"])
    assembled = assemble(recipe, synthetic=8)  # synthetic FSDD clips are 8 kHz: resampled to 16 kHz inside
    encoder = assembled.objective.towers["main"]
    assert encoder.sample_rate == 8000 and encoder.target_rate == 16000
    reference = build_component(ENCODERS, Component(name="hf_audio", path=str(folder)), "encoder",
                                {"sample_rate": 8000}).model.state_dict()
    assert all(torch.equal(encoder.model.state_dict()[k], v) for k, v in reference.items())
    assert torch.isfinite(torch.tensor(dry_run(assembled)))


def test_hf_audio_refuses_missing_extractor_wrong_model_and_hub_ids(tmp_path: Path) -> None:
    folder = _audio_dir(tmp_path, "wav2vec2")
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ConfigError, match="preprocessor_config.json"):
        build_component(ENCODERS, Component(name="hf_audio", path=str(folder)), "encoder", {})
    with pytest.raises(ConfigError, match="hub: true"):
        build_component(ENCODERS, Component(name="hf_audio", path="facebook/hubert-base-ls960"), "encoder", {})
    with pytest.raises(ConfigError, match="class token"):
        build_component(ENCODERS, Component(name="hf_audio", pool="cls"), "encoder", {})
