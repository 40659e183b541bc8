"""Time-series plugin: `.ts`/array/CSV readers, augmentation invariants, encoders, the TS2Vec loss on a
hand-checked case, TS-TCC, the SVM protocol, and a few real training steps per recipe on real data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from omnissl_timeseries import augment as A
from omnissl_timeseries.encoders import build_ts2vec_cnn, build_ts_patch_transformer
from omnissl_timeseries.svm import svm_accuracy
from omnissl_timeseries.ts2vec import (
    hierarchical_contrastive_loss,
    instance_contrastive_loss,
    temporal_contrastive_loss,
)
from omnissl_timeseries.tsfile import read_ts

from omnissl.core.errors import DataError, IncompatibleError
from omnissl.core.registry import AUGMENTATIONS, DATASETS, ENCODERS, OBJECTIVES, load_plugins
from omnissl.core.types import TokenEncoder, ViewSet

pytestmark = pytest.mark.usefixtures("one_thread")


HEADER = """# a comment
@problemName Toy
@timeStamps false
@missing true
@univariate false
@dimensions 2
@equalLength false
@classLabel true up down
@data
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- readers
def test_ts_reader_varying_length_missing_values_and_string_labels(tmp_path: Path) -> None:
    path = write(tmp_path, "toy.ts", HEADER + "1,2,3:4,?,6:down\n7,8:9,10:up\n")
    parsed = read_ts(path)
    assert parsed.class_labels == ("up", "down")
    assert parsed.labels == ["down", "up"] and parsed.label_indices().tolist() == [1, 0]
    values, lengths = parsed.padded()
    assert values.shape == (2, 2, 3) and lengths.tolist() == [3, 2]
    assert values[0, 0].tolist() == [1, 2, 3] and values[0, 1, 0] == 4 and math.isnan(values[0, 1, 1])
    assert values[1, :, :2].tolist() == [[7, 8], [9, 10]] and np.isnan(values[1, :, 2]).all()  # NaN padding


def test_ts_reader_unlabelled_file(tmp_path: Path) -> None:
    parsed = read_ts(write(tmp_path, "u.ts", "@univariate true\n@classLabel false\n@data\n1,2\n3,4,5\n"))
    assert parsed.label_indices().tolist() == [-1, -1] and parsed.padded()[1].tolist() == [2, 3]


@pytest.mark.parametrize("body, message", [
    ("@problemName X\n@bogus 1\n@data\n1:a\n", ":2: unknown header tag"),
    ("@problemName X\n@classLabel true a\n1,2\n", ":3: expected a '@tag' header"),
    ("@classLabel true a b\n@data\n1,2,3\n", ":3: label missing"),
    ("@classLabel true a b\n@data\n1,2,3:c\n", ":3: label 'c' is not declared"),
    ("@dimensions 2\n@classLabel true a\n@data\n1,2:3,4:a\n1,2:a\n", ":5: 1 channels, expected 2"),
    ("@classLabel true a\n@data\n1,x,3:a\n", ":3: channel 0, value 1: 'x'"),
    ("@missing false\n@classLabel true a\n@data\n1,?,3:a\n", ":4: '?' found"),
    ("@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n", ":5: length 2"),
    ("@classLabel true a\n", "no '@data' line"),
])
def test_ts_reader_errors_name_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "bad.ts", body)
    with pytest.raises(DataError, match="bad.ts") as error:
        read_ts(path)
    assert message in str(error.value)


def test_ucr_uea_reads_the_official_splits(data_root: Path) -> None:
    build = DATASETS.get("ucr_uea").builder
    gun = build(dataset="GunPoint", data_root=data_root)
    assert gun.train.values.shape == (50, 1, 150) and gun.test.values.shape == (150, 1, 150)
    assert gun.input_spec == {"in_channels": 1, "seq_len": 150, "num_classes": 2, "class_names": ("1", "2")}
    vowels = build(dataset="JapaneseVowels", data_root=data_root)
    assert vowels.train.values.shape == (270, 12, 29) and vowels.input_spec["num_classes"] == 9
    reference = np.load(data_root / "timeseries" / "JapaneseVowels" / "JapaneseVowels.npz")
    observed = (~torch.isnan(vowels.train.values).all(dim=1)).sum(dim=1).numpy()
    assert np.array_equal(observed, reference["len_train"])  # padding exactly after each true length
    assert np.array_equal(vowels.train.labels.numpy(), reference["y_train"])
    from_npz = build(dataset="JapaneseVowels", source="npz", data_root=data_root)
    assert torch.equal(torch.nan_to_num(from_npz.test.values, nan=-9), torch.nan_to_num(vowels.test.values, nan=-9))
    resampled = build(dataset="JapaneseVowels", variable_length="resample", data_root=data_root)
    assert not torch.isnan(resampled.train.values).any() and resampled.train.values.shape == (270, 12, 29)


def test_files_builder_reads_csv_npz_and_npy(tmp_path: Path) -> None:
    build = DATASETS.get("timeseries_files").builder
    write(tmp_path, "wide.csv", "label,t0,t1,t2\ncat,1,2,3\ndog,4,?,6\n")
    wide = build(train="wide.csv", data_root=tmp_path)
    assert wide.train.values.shape == (2, 1, 3) and wide.input_spec["class_names"] == ("cat", "dog")
    assert math.isnan(float(wide.train.values[1, 0, 1]))
    write(tmp_path, "long.csv", "id,time,a,b,label\ns2,1,5,6,y\ns1,0,1,2,x\ns1,1,3,4,x\ns2,0,7,8,y\ns3,0,9,9,x\n")
    long = build(train="long.csv", csv_layout="long", data_root=tmp_path)
    assert long.train.values.shape == (3, 2, 2)
    assert long.train.values[0].tolist() == [[1, 3], [2, 4]] and long.train.values[1].tolist() == [[7, 5], [8, 6]]
    assert torch.isnan(long.train.values[2, :, 1]).all() and long.train.labels.tolist() == [0, 1, 0]
    np.savez(tmp_path / "a.npz", x=np.zeros((4, 2, 5), np.float32), y=np.array([0, 1, 0, 1]))
    assert build(train="a.npz", data_root=tmp_path).input_spec["in_channels"] == 2
    np.save(tmp_path / "a.npy", np.ones((3, 7), np.float32))
    assert build(train="a.npy", data_root=tmp_path).train.labels.tolist() == [-1, -1, -1]


@pytest.mark.parametrize("name, text, options, message", [
    ("bad.csv", "label,t0,t1\ncat,1,oops\n", {}, "bad.csv:2: column 't1': 'oops'"),
    ("bad.csv", "label,t0\n,1\n", {}, "bad.csv:2: label missing"),
    ("bad.csv", "id,time,a,label\n1,0,1,x\n1,1,2,y\n", {"csv_layout": "long"}, "labels"),
    ("bad.csv", "id,a\n1,1\n", {"csv_layout": "long"}, "needs column 'time'"),
])
def test_files_builder_errors(tmp_path: Path, name: str, text: str, options: dict, message: str) -> None:
    write(tmp_path, name, text)
    with pytest.raises(DataError, match="bad.csv") as error:
        DATASETS.get("timeseries_files").builder(train=name, data_root=tmp_path, **options)
    assert message in str(error.value)


def test_npz_with_wrong_dimensions_is_an_error(tmp_path: Path) -> None:
    np.savez(tmp_path / "bad.npz", x=np.zeros((2, 2, 2, 2), np.float32), y=np.array([0, 1]))
    with pytest.raises(DataError, match=r"bad.npz\['x'\].*4 dimensions"):
        DATASETS.get("timeseries_files").builder(train="bad.npz", data_root=tmp_path)


# ----------------------------------------------------------------------------------------------- augmentations
def batch_with_padding() -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(6, 3, 40)
    x[1, :, 25:] = float("nan")
    x[2, :, 9:] = float("nan")
    return x


@pytest.mark.parametrize("name", sorted(n for n in ["ts_jitter", "ts_scaling", "ts_magnitude_warp", "ts_time_warp",
                                                     "ts_permute_segments", "ts_window_crop", "ts_timestamp_mask",
                                                     "ts_channel_dropout"]))
def test_augmentations_keep_shape_and_padding(name: str) -> None:
    x = batch_with_padding()
    out = AUGMENTATIONS.get(name).builder()(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    assert torch.equal(torch.isnan(out), torch.isnan(x))  # padding stays exactly where it was, nothing else NaN


def test_jitter_and_scaling_statistics() -> None:
    x = torch.zeros(64, 2, 500)
    noise = A.jitter(sigma=0.5)(x)
    assert abs(float(noise.std()) - 0.5) < 0.02 and abs(float(noise.mean())) < 0.02
    ramp = torch.arange(1.0, 51.0).repeat(8, 3, 1)
    scaled = A.scaling(sigma=0.3)(ramp)
    ratio = scaled / ramp
    assert torch.allclose(ratio, ratio[:, :, :1].expand_as(ratio))  # one factor per (series, channel)
    assert float(ratio[:, :, 0].std()) > 0.05


def test_permutation_moves_values_without_changing_them() -> None:
    x = batch_with_padding()
    out = A.permute_segments(max_segments=6)(x)
    for i, end in enumerate([40, 25, 9, 40, 40, 40]):
        assert torch.equal(out[i, :, :end].sort(dim=1).values, x[i, :, :end].sort(dim=1).values)
    # whole time steps move together (channels are not shuffled independently)
    columns = {tuple(col.tolist()) for col in x[0].T}
    assert all(tuple(col.tolist()) in columns for col in out[0].T)
    assert not torch.equal(out, x)


def test_time_warp_is_monotone_and_keeps_endpoints() -> None:
    ramp = torch.arange(30.0).repeat(5, 1, 1)
    ramp[2, :, 20:] = float("nan")
    out = A.time_warp(sigma=0.5)(ramp)
    for i, end in enumerate([30, 30, 20, 30, 30]):
        assert out[i, 0, 0] == 0 and abs(float(out[i, 0, end - 1]) - (end - 1)) < 1e-4
        assert (out[i, 0, :end].diff() >= -1e-5).all()
    assert not torch.allclose(out[0], ramp[0])


def test_magnitude_warp_is_smooth_and_window_crop_is_a_sub_range() -> None:
    ones = torch.ones(4, 1, 100)
    curve = A.magnitude_warp(sigma=0.3, knots=4)(ones)
    assert float(curve.diff(dim=2).abs().max()) < 0.1 and float(curve.std()) > 0.01
    ramp = torch.arange(50.0).repeat(4, 1, 1)
    crop = A.window_crop(scale=(0.5, 0.5))(ramp)
    span = crop[:, 0, -1] - crop[:, 0, 0]
    assert torch.allclose(span, torch.full_like(span, 24.5), atol=1e-3) and (crop.diff(dim=2) > 0).all()
    assert torch.allclose(A.window_crop(scale=(1.0, 1.0))(ramp), ramp)


def test_masking_ops_zero_whole_steps_or_channels() -> None:
    x = torch.randn(32, 4, 200) + 10
    masked = A.timestamp_mask(ratio=0.3)(x)
    zero_steps = (masked == 0).all(dim=1)
    assert ((masked == x) | (masked == 0)).all() and ((masked == 0).any(dim=1) == zero_steps).all()
    assert abs(float(zero_steps.float().mean()) - 0.3) < 0.03
    dropped = A.channel_dropout(p=0.7)(x)
    zero_channels = (dropped == 0).all(dim=2)
    assert ((dropped == x).all(dim=2) | zero_channels).all()  # a channel is kept whole or zeroed whole
    assert (~zero_channels).any(dim=1).all() and zero_channels.any()  # one channel always survives
    crop = A.random_crop(scale=(0.5, 0.5))(x)
    kept = ~torch.isnan(crop).all(dim=1)
    assert (kept.sum(dim=1) == 100).all() and (kept.float().diff(dim=1).abs().sum(dim=1) <= 2).all()


# ----------------------------------------------------------------------------------------------- encoders
def test_cnn_pools_the_max_over_real_steps_and_causal_ignores_padding() -> None:
    torch.manual_seed(0)
    encoder = build_ts2vec_cnn(in_channels=2, hidden_dim=8, output_dim=16, depth=3, causal=True).eval()
    x = torch.randn(3, 2, 30)
    out = encoder(x)
    assert out.tokens.shape == (3, 30, 16) and torch.allclose(out.pooled, out.tokens.amax(dim=1))
    padded = torch.cat([x, torch.full((3, 2, 10), float("nan"))], dim=2)
    out_padded = encoder(padded)
    assert out_padded.padding_mask.shape == (3, 40) and bool(out_padded.padding_mask[:, 30:].all())
    assert torch.allclose(out_padded.pooled, out.pooled, atol=1e-5)  # causal: the future padding changes nothing
    assert torch.allclose(out_padded.tokens[:, :30], out.tokens, atol=1e-5)


def test_patch_transformer_is_a_token_encoder() -> None:
    encoder = build_ts_patch_transformer(in_channels=3, seq_len=29, patch_size=4, dim=16, depth=1, heads=2)
    assert isinstance(encoder, TokenEncoder)
    x = torch.randn(2, 3, 29)
    x[1, :, 10:] = float("nan")
    sequence = encoder.tokenize(x)
    assert sequence.tokens.shape == (2, 8, 16) and sequence.padding_mask[1].tolist() == [False] * 3 + [True] * 5
    assert encoder.reconstruction_target(x).shape == (2, 8, 12)
    subset = type(sequence)(tokens=sequence.tokens[:, :3], padding_mask=None)
    assert encoder.encode_tokens(subset).tokens.shape == (2, 3, 16)
    assert torch.isfinite(encoder(x).pooled).all()


# ----------------------------------------------------------------------------------------------- TS2Vec loss
def reference_nce(items: list[list[float]], positive: dict[int, int]) -> float:
    """−log softmax at the positive over every other item, dot-product similarity, averaged over anchors."""
    total = 0.0
    for i, anchor in enumerate(items):
        scores = {j: sum(a * b for a, b in zip(anchor, other)) for j, other in enumerate(items) if j != i}
        total -= scores[positive[i]] - math.log(sum(math.exp(s) for s in scores.values()))
    return total / len(items)


def test_ts2vec_loss_matches_the_formula_on_a_hand_checked_case() -> None:
    z1 = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [-1.0, 0.2]]])  # (B=2, T=2, D=2)
    z2 = torch.tensor([[[0.8, 0.1], [0.4, 0.9]], [[0.1, 0.7], [-0.5, -0.5]]])
    pairs = {0: 2, 1: 3, 2: 0, 3: 1}
    # instance-wise: per timestamp, items [z1_0, z1_1, z2_0, z2_1]
    inst = [reference_nce([z1[0, t].tolist(), z1[1, t].tolist(), z2[0, t].tolist(), z2[1, t].tolist()], pairs)
            for t in range(2)]
    # temporal: per series, items [z1_t0, z1_t1, z2_t0, z2_t1]
    temp = [reference_nce([*z1[b].tolist(), *z2[b].tolist()], pairs) for b in range(2)]
    assert float(instance_contrastive_loss(z1, z2)) == pytest.approx(sum(inst) / 2, rel=1e-5)
    assert float(temporal_contrastive_loss(z1, z2)) == pytest.approx(sum(temp) / 2, rel=1e-5)
    # depth 2: max-pool to one step, where only the instance term applies
    p1, p2 = z1.amax(dim=1), z2.amax(dim=1)
    top = reference_nce([p1[0].tolist(), p1[1].tolist(), p2[0].tolist(), p2[1].tolist()], pairs)
    expected = (0.5 * sum(inst) / 2 + 0.5 * sum(temp) / 2 + 0.5 * top) / 2
    assert float(hierarchical_contrastive_loss(z1, z2, alpha=0.5)) == pytest.approx(expected, rel=1e-5)
    # t = 0 by hand: items a=(1,0) b=(0,1) c=(.8,.1) d=(.1,.7), pairs a↔c, b↔d; dot products written out
    nll = lambda pos, others: -(pos - math.log(sum(math.exp(s) for s in others)))
    by_hand = (nll(0.8, [0.0, 0.8, 0.1]) + nll(0.7, [0.0, 0.1, 0.7])
               + nll(0.8, [0.8, 0.1, 0.15]) + nll(0.7, [0.1, 0.7, 0.15])) / 4
    assert by_hand == pytest.approx(0.70947, abs=1e-4)
    assert float(instance_contrastive_loss(z1[:, :1], z2[:, :1])) == pytest.approx(by_hand, rel=1e-5)


def test_ts2vec_loss_ignores_padded_steps() -> None:
    torch.manual_seed(0)
    z1, z2 = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    valid = torch.ones(3, 5, dtype=torch.bool)
    valid[:, 4] = False  # the last step is padding in every series: same as dropping it
    assert float(temporal_contrastive_loss(z1, z2, valid)) == pytest.approx(
        float(temporal_contrastive_loss(z1[:, :4], z2[:, :4])), rel=1e-5)
    valid = torch.ones(3, 5, dtype=torch.bool)
    valid[2] = False  # series 2 is all padding: same as a batch of two
    assert float(instance_contrastive_loss(z1, z2, valid)) == pytest.approx(
        float(instance_contrastive_loss(z1[:2], z2[:2])), rel=1e-5)
    valid[:, 3:] = False  # steps where every series is padding: finite loss and gradient
    z1.requires_grad_(True)
    loss = hierarchical_contrastive_loss(z1, z2, valid=valid)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z1.grad).all()


def test_ts2vec_needs_token_outputs() -> None:
    load_plugins()
    with pytest.raises(IncompatibleError):
        OBJECTIVES.get("ts2vec").builder(encoder=ENCODERS.get("resnet10").builder(in_channels=1))


# ----------------------------------------------------------------------------------------------- TS-TCC, SVM
def test_ts_tcc_runs_on_weak_and_strong_views_with_padding() -> None:
    encoder = build_ts2vec_cnn(in_channels=2, hidden_dim=8, output_dim=16, depth=2, causal=True)
    objective = OBJECTIVES.get("ts_tcc").builder(encoder=encoder, timesteps=4, context_dim=16, heads=2)
    x = torch.randn(6, 2, 20)
    x[0, :, 12:] = float("nan")
    weak, strong = A.jitter()(x), A.permute_segments()(x)
    out = objective(ViewSet(global_views=[weak], local_views=[strong]))
    out.loss.backward()
    assert torch.isfinite(out.loss) and float(out.logs["t"]) <= 12 - 4 - 1
    assert encoder.input_fc.weight.grad is not None


def test_svm_protocol_separable_and_tiny_classes() -> None:
    generator = torch.Generator().manual_seed(0)
    train = torch.cat([torch.randn(20, 3, generator=generator) + 4, torch.randn(20, 3, generator=generator) - 4])
    test = torch.cat([torch.randn(10, 3, generator=generator) + 4, torch.randn(10, 3, generator=generator) - 4])
    labels = torch.arange(2).repeat_interleave(20)
    result = svm_accuracy(train, labels, test, torch.arange(2).repeat_interleave(10), cv_min_train=0)
    assert result.accuracy == 1.0 and result.folds == 5 and result.cv_accuracy == 1.0
    one_each = svm_accuracy(train[[0, 39]], labels[[0, 39]], test, torch.arange(2).repeat_interleave(10))
    assert one_each.folds == 0 and math.isinf(one_each.C) and one_each.accuracy == 1.0


# ----------------------------------------------------------------------------------------------- recipes, real data
RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "timeseries"


SMALL_CNN = ["encoder.depth=2", "encoder.hidden_dim=16", "encoder.output_dim=32"]
SMALL_TRANSFORMER = ["encoder.depth=1", "encoder.dim=16", "objective.decoder_dim=16"]


@pytest.mark.parametrize("recipe_name, dataset, small", [
    ("ts2vec", "GunPoint", SMALL_CNN), ("ts2vec", "JapaneseVowels", SMALL_CNN),
    ("ts_tcc", "BasicMotions", SMALL_CNN), ("ts_tcc", "JapaneseVowels", SMALL_CNN),
    ("cpc", "ItalyPowerDemand", SMALL_CNN), ("simclr", "ArrowHead", SMALL_CNN),
    ("mae", "JapaneseVowels", SMALL_TRANSFORMER)])
def test_recipe_trains_a_few_steps_on_real_data(recipe_name: str, dataset: str, small: list[str], data_root: Path,
                                                tmp_path: Path) -> None:
    from omnissl.core.config import load_recipe
    from omnissl.train.assemble import assemble
    from omnissl.train.runner import read_metrics, train

    recipe = load_recipe(RECIPES / f"{recipe_name}.yaml", [
        f"data.dataset={dataset}", *small,
        "train.steps=3", "train.batch_size=8", "train.log_every=1", "train.checkpoint_every=0"])
    assembled = assemble(recipe, root=data_root)
    assert len(assembled.bundle.train) > 30  # the real training split, not the synthetic stand-in
    before = [p.detach().clone() for p in assembled.objective.encoder.parameters()]
    result = train(assembled, tmp_path / "run")
    assert result.steps_done == 3
    losses = [row["loss"] for row in read_metrics(tmp_path / "run") if "loss" in row]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    after = list(assembled.objective.encoder.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))
