"""Speech plugin: audio loading (FSDD, folders, manifests), log-mel shapes, augmentation invariants, SpecAugment
bounds, wav2vec 2.0 mask/negative sampling and loss, and a few real training steps per speech recipe."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.core.errors import DataError, IncompatibleError
from omnissl.train.runner import Trainer, read_metrics
from omnissl.core.types import ViewSet
from omnissl_speech import augment as A
from omnissl_speech.data import audio_folder, audio_manifest, fsdd
from omnissl_speech.encoders import build_mel_cnn, build_spec_transformer, build_wav2vec2
from omnissl_speech.features import LogMel, mean_log_mel
from omnissl_speech.wav2vec2 import (build_wav2vec2_objective, contrastive_logits, contrastive_loss,
                                     sample_mask_indices, sample_negative_indices)

ROOT = Path(__file__).resolve().parents[2]
TINY_W2V = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, conv_dim=32, codevector_dim=32,
                num_codevectors_per_group=8)


@pytest.fixture(scope="module")
def fsdd_digit(data_root: Path):
    return fsdd(data_root=data_root)


def batch_of(bundle, rows):
    return bundle.collate(bundle.train.__getitems__(list(rows)))


# ---------------------------------------------------------------- data
def test_fsdd_official_split_and_labels(fsdd_digit, data_root: Path) -> None:
    assert len(fsdd_digit.train) == 2700 and len(fsdd_digit.test) == 300
    # Official rule: recording index 0–4 ({digit}_{speaker}_{index}.wav) is test.
    assert all(int(n.rsplit("_", 1)[1].split(".")[0]) <= 4 for n in fsdd_digit.test.names)
    assert all(int(n.rsplit("_", 1)[1].split(".")[0]) >= 5 for n in fsdd_digit.train.names)
    assert torch.bincount(fsdd_digit.test.labels).tolist() == [30] * 10
    speaker = fsdd(data_root=data_root, label="speaker")
    assert speaker.num_classes == 6 and torch.bincount(speaker.test.labels).tolist() == [50] * 6
    assert fsdd_digit.train.names == speaker.train.names
    assert fsdd_digit.input_spec["sample_rate"] == 8000


def test_collate_pads_with_a_mask_and_keeps_samples(fsdd_digit) -> None:
    batch = batch_of(fsdd_digit, [0, 1, 2, 500])
    wave, pad = batch["x"]["wave"], batch["x"]["padding_mask"]
    lengths = [fsdd_digit.train.waves[i].numel() for i in (0, 1, 2, 500)]
    assert wave.shape == (4, max(lengths)) and (~pad).sum(1).tolist() == lengths
    assert torch.equal(wave[3, : lengths[3]], fsdd_digit.train.waves[500]) and wave[pad].abs().sum() == 0
    assert wave.abs().max() <= 1.0 and batch["y"].tolist() == fsdd_digit.train.labels[[0, 1, 2, 500]].tolist()


def test_resampled_16k_fsdd_doubles_lengths(data_root: Path) -> None:
    bundle = fsdd(data_root=data_root, sample_rate=16000, max_train=8)
    assert len(bundle.train) == 8 and bundle.input_spec["sample_rate"] == 16000
    raw = fsdd(data_root=data_root, max_train=8)
    assert all(a.numel() == 2 * b.numel() for a, b in zip(bundle.train.waves, raw.train.waves))


def _write(path: Path, data: np.ndarray, rate: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), data, rate)


def test_audio_folder_mono_resample_and_bad_files(tmp_path: Path) -> None:
    stereo = np.stack([np.full(1600, 0.5), np.full(1600, -0.1)], axis=1).astype(np.float32)
    for label in ("no", "yes"):
        for i in range(5):
            _write(tmp_path / "clips" / label / f"{i}.flac", stereo, 16000)
    bundle = audio_folder(root="clips", sample_rate=8000, test_fraction=0.2, data_root=tmp_path)
    assert len(bundle.train) == 8 and len(bundle.test) == 2 and bundle.input_spec["class_names"] == ("no", "yes")
    wave = bundle.train.waves[0]
    assert wave.numel() == 800 and torch.allclose(wave[100:700], torch.full((600,), 0.2), atol=1e-3)
    (tmp_path / "clips" / "yes" / "broken.wav").write_bytes(b"RIFF not really audio")
    with pytest.raises(DataError, match="broken.wav"):
        audio_folder(root="clips", data_root=tmp_path)
    (tmp_path / "clips" / "yes" / "broken.wav").unlink()
    _write(tmp_path / "clips" / "yes" / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(DataError, match="empty.wav"):
        audio_folder(root="clips", data_root=tmp_path)


def test_audio_folder_label_from_filename_pattern(tmp_path: Path) -> None:
    for digit in (3, 7):
        for i in range(3):
            _write(tmp_path / "flat" / f"{digit}_x_{i}.wav", np.zeros(400, dtype=np.float32) + 0.1, 8000)
    bundle = audio_folder(root="flat", label_from="pattern", pattern=r"^(?P<label>\d)_", sample_rate=8000,
                          test_fraction=0.34, data_root=tmp_path)
    assert bundle.input_spec["class_names"] == ("3", "7") and len(bundle.train) + len(bundle.test) == 6


def test_manifest_labels_speakers_and_errors(tmp_path: Path) -> None:
    for i in range(4):
        _write(tmp_path / "a" / f"{i}.wav", np.full(800, 0.1 * (i + 1), dtype=np.float32), 8000)
    (tmp_path / "train.csv").write_text("path,label,speaker\na/0.wav,up,ann\na/1.wav,down,bob\na/2.wav,up,bob\n")
    (tmp_path / "test.csv").write_text("path,label,speaker\na/3.wav,down,ann\n")
    bundle = audio_manifest(train="train.csv", test="test.csv", sample_rate=8000, data_root=tmp_path)
    assert bundle.train.labels.tolist() == [1, 0, 1] and bundle.test.labels.tolist() == [0]
    by_speaker = audio_manifest(train="train.csv", test="test.csv", label="speaker", sample_rate=8000,
                                data_root=tmp_path)
    assert by_speaker.train.labels.tolist() == [0, 1, 1]
    (tmp_path / "bad.csv").write_text("path,label\na/3.wav,sideways\n")
    with pytest.raises(DataError, match="3.wav: label 'sideways'"):
        audio_manifest(train="train.csv", test="bad.csv", data_root=tmp_path)
    (tmp_path / "nolabel.csv").write_text("path,klass\na/0.wav,up\n")
    with pytest.raises(DataError, match="needs a 'label' column"):
        audio_manifest(train="nolabel.csv", data_root=tmp_path)
    (tmp_path / "missing.csv").write_text("path,label\na/nope.wav,up\n")
    with pytest.raises(DataError, match="nope.wav"):
        audio_manifest(train="missing.csv", data_root=tmp_path)


# ---------------------------------------------------------------- features and augmentations
def test_log_mel_frames_padding_and_batch_independence(fsdd_digit) -> None:
    front = LogMel(sample_rate=8000, n_mels=64)
    batch = batch_of(fsdd_digit, [0, 7])
    spec, frame_pad = front(batch["x"])
    lengths = (~batch["x"]["padding_mask"]).sum(1)
    assert front.hop == 80 and spec.shape == (2, 64, batch["x"]["wave"].shape[1] // 80 + 1)
    assert (~frame_pad).sum(1).tolist() == [(int(n) - 1) // 80 + 1 for n in lengths]
    assert spec.masked_select(frame_pad.unsqueeze(1)).abs().sum() == 0
    short = int(lengths.argmin())
    alone = front({"wave": batch["x"]["wave"][short:short + 1, : lengths[short]]})[0]
    assert torch.allclose(spec[short, :, : alone.shape[-1]], alone[0], atol=1e-4)
    assert mean_log_mel(batch["x"]["wave"], batch["x"]["padding_mask"], sample_rate=8000).shape == (2, 64)


def test_random_crop_is_a_window_or_masked_pad(fsdd_digit) -> None:
    torch.manual_seed(0)
    batch = batch_of(fsdd_digit, [0, 1, 2, 3])
    out = A.random_crop(seconds=0.2, sample_rate=8000)(batch["x"])
    assert out["wave"].shape == (4, 1600)
    for row in range(4):
        source = fsdd_digit.train.waves[row]
        if source.numel() >= 1600:
            windows = source.unfold(0, 1600, 1)  # every contiguous 1,600-sample window of the recording
            assert (windows == out["wave"][row]).all(dim=1).any() and not out["padding_mask"][row].any()
    longer = A.random_crop(seconds=3.0, sample_rate=8000)(batch["x"])
    assert longer["wave"].shape == (4, 24000)
    assert (~longer["padding_mask"]).sum(1).tolist() == [fsdd_digit.train.waves[r].numel() for r in range(4)]


def test_waveform_ops_keep_padding_and_their_invariants(fsdd_digit) -> None:
    torch.manual_seed(1)
    x = batch_of(fsdd_digit, range(0, 2700, 300))["x"]
    keep = ~x["padding_mask"]
    gained = A.gain(min_db=-6, max_db=6)(x)
    ratio = gained["wave"][keep].abs().sum() / x["wave"][keep].abs().sum()
    per_row = (gained["wave"].abs().sum(1) / x["wave"].abs().sum(1))
    assert ((per_row >= 10 ** (-6 / 20) - 1e-4) & (per_row <= 10 ** (6 / 20) + 1e-4)).all() and ratio > 0
    noisy = A.add_noise(min_snr_db=10, max_snr_db=20, p=1.0)(x)
    noise = noisy["wave"] - x["wave"]
    assert noise[~keep].abs().sum() == 0
    snr = 10 * torch.log10((x["wave"] ** 2).sum(1) / (noise ** 2).sum(1))
    assert ((snr > 9) & (snr < 21)).all(), snr
    shifted = A.time_shift(max_fraction=0.3, p=1.0)(x)
    for row in range(keep.shape[0]):  # a circular shift is a permutation of the valid samples
        assert torch.equal(shifted["wave"][row][keep[row]].sort().values, x["wave"][row][keep[row]].sort().values)
    assert shifted["wave"][~keep].abs().sum() == 0
    same = A.speed_perturb(min_factor=1.0, max_factor=1.0, p=1.0)(x)
    assert torch.allclose(same["wave"], x["wave"]) and torch.equal(same["padding_mask"], x["padding_mask"])
    slow = A.speed_perturb(min_factor=0.5, max_factor=0.5, p=1.0)(x)
    lengths = keep.sum(1)
    assert ((~slow["padding_mask"]).sum(1) == (lengths - 1) * 2 + 1).all()
    assert torch.allclose(slow["wave"][:, ::2][:, : x["wave"].shape[1]] * keep, x["wave"] * keep, atol=1e-6)


def test_spec_augment_masks_lie_within_bounds(fsdd_digit) -> None:
    torch.manual_seed(2)
    x = batch_of(fsdd_digit, range(0, 2700, 50))["x"]
    op = A.spec_augment(num_time_masks=2, time_width_seconds=0.05, max_time_fraction=0.2, num_freq_masks=2,
                        freq_width=0.15, sample_rate=8000)
    out = op(x)
    lengths = (~x["padding_mask"]).sum(1).float()
    bound = 2 * torch.minimum(lengths * 0.2, torch.full_like(lengths, 400.0))
    assert not (out["time_mask"] & x["padding_mask"]).any()
    assert (out["time_mask"].sum(1) <= bound).all() and out["time_mask"].any()
    low, high = out["freq_mask"][..., 0], out["freq_mask"][..., 1]
    assert out["freq_mask"].shape == (x["wave"].shape[0], 2, 2)
    assert (low >= 0).all() and (high <= 1).all() and ((high - low) <= 0.15 + 1e-6).all()
    front = LogMel(sample_rate=8000, n_mels=64)
    spec, frame_pad = front(out)
    clean, _ = front(x)
    zero_bins = (spec == 0).all(dim=2) & ~(clean == 0).all(dim=2)
    assert (zero_bins.sum(1) <= math.ceil(2 * 0.15 * 64) + 2).all()
    with pytest.raises(ValueError, match="spec_augment last"):
        A.gain()(out)


# ---------------------------------------------------------------- encoders
def test_encoders_shapes_and_padding_independent_pooling(fsdd_digit) -> None:
    torch.manual_seed(0)
    x = batch_of(fsdd_digit, [0, 1])["x"]
    short = int((~x["padding_mask"]).sum(1).argmin())
    length = int((~x["padding_mask"][short]).sum())
    alone = {"wave": x["wave"][short:short + 1, :length]}
    for encoder in (build_wav2vec2(**{k: TINY_W2V[k] for k in ("hidden_size", "num_layers", "num_heads",
                                                                 "intermediate_size", "conv_dim")}),
                    build_spec_transformer(sample_rate=8000, dim=32, depth=1, heads=2),
                    build_mel_cnn(sample_rate=8000, dim=32, depth=2)):
        encoder.eval()
        with torch.no_grad():
            out = encoder(x)
            single = encoder(alone)
        assert out.pooled.shape == (2, encoder.embed_dim) and out.tokens.shape[0] == 2
        assert out.padding_mask.shape == out.tokens.shape[:2]
        assert torch.allclose(out.pooled[short], single.pooled[0], atol=1e-4), type(encoder).__name__
    spec = build_spec_transformer(sample_rate=8000, n_mels=64, freq_patch=16, time_patch=4, dim=32, depth=1, heads=2)
    sequence = spec.tokenize(x)
    frames = x["wave"].shape[1] // 80 + 1
    assert sequence.tokens.shape == (2, math.ceil(frames / 4) * 4, 32)
    assert spec.reconstruction_target(x).shape == (2, sequence.tokens.shape[1], 64)


# ---------------------------------------------------------------- wav2vec 2.0 indices and loss
def test_mask_indices_respect_padding_and_span_rules() -> None:
    torch.manual_seed(3)
    lengths = torch.tensor([50, 12, 3, 30])
    frame_pad = torch.arange(50).unsqueeze(0) >= lengths.unsqueeze(1)
    for _ in range(20):
        mask = sample_mask_indices(frame_pad, mask_prob=0.1, mask_length=4)
        assert not (mask & frame_pad).any()
        counts = mask.sum(1)
        assert counts[2] == 3 and (counts >= torch.minimum(lengths, torch.tensor(4))).all()
        assert (counts <= torch.clamp((0.1 * lengths.float()).round().long(), min=1) * 4).all()
    with pytest.raises(ValueError, match="valid frames"):
        sample_mask_indices(torch.tensor([[False, True, True]]), mask_prob=0.5, mask_length=2)


def test_negatives_are_other_masked_steps_of_the_same_utterance() -> None:
    torch.manual_seed(4)
    b, f, k = 3, 40, 25
    lengths = torch.tensor([40, 20, 9])
    frame_pad = torch.arange(f).unsqueeze(0) >= lengths.unsqueeze(1)
    mask = sample_mask_indices(frame_pad, mask_prob=0.2, mask_length=3)
    negatives = sample_negative_indices(mask, num_negatives=k)
    assert negatives.shape == (b, f, k)
    seen: dict[int, set[int]] = {row: set() for row in range(b)}
    for row, step in mask.nonzero().tolist():
        flat = negatives[row, step]
        assert (flat // f == row).all(), "a distractor from another utterance"
        positions = flat % f
        assert (positions != step).all(), "a distractor equal to its positive"
        assert mask[row, positions].all() and not frame_pad[row, positions].any()
        seen[row].update(positions.tolist())
    for row in range(b):  # every other masked step is reachable
        assert seen[row] == set(mask[row].nonzero().flatten().tolist())
    two = torch.zeros(1, 5, dtype=torch.bool)
    two[0, [1, 3]] = True
    pair = sample_negative_indices(two, num_negatives=4)
    assert pair[0, 1].tolist() == [3] * 4 and pair[0, 3].tolist() == [1] * 4


def test_contrastive_loss_matches_the_formula_by_hand() -> None:
    context = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    targets = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    mask = torch.tensor([[True, False, True]])
    negatives = torch.tensor([[[2], [1], [0]]])  # step 0 ↔ step 2
    logits = contrastive_logits(context, targets, negatives, temperature=0.5)
    # step 0: cos(c0, q0) = 1, cos(c0, q2) = 0; step 2: cos(c2, q2) = 1/√2, cos(c2, q0) = 1/√2.
    expected_0 = -math.log(math.exp(2.0) / (math.exp(2.0) + math.exp(0.0)))
    expected_2 = math.log(2.0)
    assert math.isclose(contrastive_loss(logits, mask).item(), (expected_0 + expected_2) / 2, rel_tol=1e-5)
    clash = contrastive_logits(context, targets.clone().fill_(1.0), negatives, temperature=0.5)
    assert torch.isinf(clash[0, 0, 1]) and math.isclose(contrastive_loss(clash, mask).item(), 0.0, abs_tol=1e-6)


def test_wav2vec2_loss_equals_hf_pretraining_loss(fsdd_digit) -> None:
    from transformers import Wav2Vec2ForPreTraining

    torch.manual_seed(5)
    encoder = build_wav2vec2(**TINY_W2V)
    objective = build_wav2vec2_objective(encoder=encoder, mask_prob=0.2, mask_length=3, num_negatives=6,
                                         diversity_weight=0.1).eval()
    reference = Wav2Vec2ForPreTraining(encoder.config).eval()
    reference.wav2vec2.masked_spec_embed = torch.nn.Parameter(torch.zeros(TINY_W2V["hidden_size"]))
    reference.wav2vec2.load_state_dict(encoder.model.state_dict())
    for name in ("quantizer", "project_hid", "project_q"):
        getattr(reference, name).load_state_dict(getattr(objective, name).state_dict())
    x = A.random_crop(seconds=0.5, sample_rate=8000)(batch_of(fsdd_digit, [0, 900, 1800])["x"])
    values, attention, frame_pad = encoder.prepare(x)
    torch.manual_seed(6)
    mask = sample_mask_indices(frame_pad, mask_prob=0.2, mask_length=3)
    negatives = sample_negative_indices(mask, num_negatives=6)
    with torch.no_grad():
        hf = reference(values, attention_mask=attention, mask_time_indices=mask, sampled_negative_indices=negatives)
        torch.manual_seed(6)
        ours = objective(ViewSet([x]))
    masked = int(mask.sum())
    assert math.isclose(ours.logs["contrastive"].item() * masked, hf.contrastive_loss.item(), rel_tol=1e-4)
    assert math.isclose(ours.loss.item() * masked, hf.loss.item(), rel_tol=1e-4)


def test_wav2vec2_objective_needs_its_encoder() -> None:
    with pytest.raises(IncompatibleError, match="wav2vec2"):
        build_wav2vec2_objective(encoder=build_mel_cnn(sample_rate=8000, dim=16, depth=1))


# ---------------------------------------------------------------- recipes on real audio
SMALL = {
    "wav2vec2.yaml": ["encoder.hidden_size=32", "encoder.num_layers=1", "encoder.num_heads=2",
                      "encoder.intermediate_size=64", "encoder.conv_dim=32", "encoder.codevector_dim=32"],
    "masked_spectrogram.yaml": ["encoder.dim=32", "encoder.depth=1", "encoder.heads=2", "objective.decoder_dim=32",
                                "objective.decoder_heads=2"],
    "cpc.yaml": ["encoder.dim=32", "encoder.depth=1", "objective.context_dim=32"],
    "data2vec.yaml": ["encoder.dim=32", "encoder.depth=2", "encoder.heads=2", "objective.decoder_dim=32",
                      "objective.decoder_heads=2"],
    "simclr.yaml": ["encoder.dim=32", "encoder.depth=1", "objective.hidden_dim=32", "objective.projection_dim=16"],
}


@pytest.mark.parametrize("recipe_file", sorted(p.name for p in (ROOT / "recipes" / "speech").glob("*.yaml")))
def test_speech_recipes_train_a_few_steps_on_fsdd(recipe_file: str, tmp_path: Path, data_root: Path) -> None:
    overrides = SMALL.get(recipe_file, []) + ["data.max_train=64", "train.steps=3", "train.batch_size=8",
                                              "train.log_every=1", "train.warmup_steps=1", "train.max_minutes=null"]
    assembled = assemble(load_recipe(ROOT / "recipes" / "speech" / recipe_file, overrides), root=data_root)
    result = Trainer(assembled, tmp_path / "run").fit()
    losses = [r["loss"] for r in read_metrics(tmp_path / "run") if "loss" in r]
    assert result.steps_done == 3 and len(losses) == 3 and all(math.isfinite(v) for v in losses)
