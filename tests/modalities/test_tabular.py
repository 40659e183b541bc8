"""Tabular plugin: schema inference / reuse, missing-value accounting, errors, SCARF / VIME corruptions and losses,
encoders, the label-scarce helper, and a few real training steps per recipe on UCI Adult."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from omnissl.core.errors import DataError
from omnissl.core.types import ViewSet
from omnissl_tabular.augment import FeatureMask, ScarfCorruption, bernoulli_mask
from omnissl_tabular.data import TabularMarginals, read_table
from omnissl_tabular.datasets import adult, read_adult, tabular_file
from omnissl_tabular.encoders import build_ft_transformer, build_tabular_mlp
from omnissl.eval.label_efficiency import label_subset, probe_at_fractions
from omnissl_tabular.objectives import build_scarf, build_vime
from omnissl_tabular.schema import TabularSchema

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "tabular"


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(tmp_path / "cache"))


def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.DataFrame({"id": [1, 2, 3, 4], "age": [20.0, 30.0, np.nan, 50.0], "city": ["a", "b", "a", None],
                          "flag": [True, False, True, True], "y": ["no", "yes", "no", "yes"]})
    test = pd.DataFrame({"id": [9, 8], "age": [np.nan, 40.0], "city": ["z", None], "flag": [False, True],
                         "y": ["yes", "no"]})
    return train, test


def test_schema_inferred_on_train_fixed_and_reused(tmp_path: Path) -> None:
    train, test = frames()
    schema = TabularSchema.infer(train, target="y", id_columns=["id"])
    assert [c.name for c in schema.numeric_columns] == ["age"]
    assert [c.name for c in schema.categorical_columns] == ["city", "flag"]
    assert schema.classes == ["no", "yes"] and schema.ignored == ["id"]
    age = schema.numeric_columns[0]
    assert age.mean == pytest.approx(100 / 3) and age.std == pytest.approx(np.std([20, 30, 50]))  # train only
    loaded = TabularSchema.load(schema.save(tmp_path / "schema.json"))
    assert loaded == schema
    out = loaded.transform(test, source="test.csv")
    # numeric: standardised with *train* stats, missing → 0 (= train mean) and flagged by the indicator column
    assert loaded.numeric_feature_names == ["age", "age__missing"]
    np.testing.assert_allclose(out.numeric[:, 0], [0.0, (40 - 100 / 3) / np.std([20, 30, 50])], rtol=1e-6)
    np.testing.assert_array_equal(out.numeric[:, 1], [1.0, 0.0])
    # categorical: 0 = <unknown> (unseen 'z'), 1 = <missing>, seen values from 2 in sorted order
    np.testing.assert_array_equal(out.categorical[:, 0], [0, 1])
    assert out.missing == {"age": 1, "city": 1, "flag": 0} and out.unknown == {"city": 1, "flag": 0}
    np.testing.assert_array_equal(out.y, [1, 0])
    fitted = loaded.transform(train)
    np.testing.assert_array_equal(fitted.categorical[:, 0], [2, 3, 2, 1])
    assert fitted.numeric.shape == (4, 2)  # no row dropped


def test_dataframe_ingestion_keeps_category_identity_across_dtypes(caplog: pytest.LogCaptureFixture) -> None:
    from omnissl_tabular import bundle_from_frames

    train = pd.DataFrame({"code": [1, 2, 1, 2], "ok": [True, False, None, True], "v": [0.0, 1.0, 2.0, 3.0],
                          "y": [0, 1, 0, 1]})
    test = pd.DataFrame({"code": [1.0, np.nan], "ok": [False, None], "v": [1.0, 1.0], "y": [1.0, 0.0]})
    bundle = bundle_from_frames(train, test, target="y", categorical=["code"])
    # an int category read back as float (because of a NaN) is the same category, not <unknown>
    assert bundle.test.categorical[:, 0].tolist() == [2, 1] and bundle.test.labels.tolist() == [1, 0]
    assert bundle.test.categorical[:, 1].tolist() == [2, 1]  # 'False' sorts first; None → <missing>
    assert bundle.input_spec["missing_counts"]["train"]["missing"]["ok"] == 1
    assert "tabular test: 2 rows kept (none dropped); missing values filled per column: {'code': 1, 'ok': 1}" \
        in caplog.text


def test_clear_errors(tmp_path: Path) -> None:
    train, test = frames()
    with pytest.raises(DataError, match="target column 'label' not found"):
        TabularSchema.infer(train, target="label")
    with pytest.raises(DataError, match="'empty' is entirely missing"):
        TabularSchema.infer(train.assign(empty=np.nan), target="y")
    with pytest.raises(DataError, match="target 'y' is missing at row 2"):
        TabularSchema.infer(train.assign(y=["no", "yes", None, "yes"]), target="y")
    schema = TabularSchema.infer(train, target="y", id_columns=["id"])
    with pytest.raises(DataError, match="test.csv: column 'age' holds text values here but number"):
        schema.transform(test.assign(age=["old", "young"]), source="test.csv")
    with pytest.raises(DataError, match="column 'city' holds number values here but text"):
        schema.transform(test.assign(city=[1, 2]), source="test.csv")
    with pytest.raises(DataError, match="target column 'y' not found"):
        schema.transform(test.drop(columns="y"), source="test.csv")
    with pytest.raises(DataError, match=r"target values \['maybe'\] never occur in train"):
        schema.transform(test.assign(y=["maybe", "no"]))
    train.to_parquet(tmp_path / "t.parquet")
    (tmp_path / "t.csv").write_text("a,y\n1,0\n", encoding="utf-8")
    with pytest.raises(DataError, match="declared CSV but this is a Parquet file"):
        read_table(tmp_path / "t.parquet", file_format="csv")
    with pytest.raises(DataError, match="declared Parquet but"):
        read_table(tmp_path / "t.csv", file_format="parquet")
    with pytest.raises(DataError, match="not found"):
        read_table(tmp_path / "missing.csv")


def test_csv_and_parquet_files_give_the_same_bundle(tmp_path: Path) -> None:
    train, test = frames()
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    train.to_parquet(tmp_path / "train.parquet")
    test.to_parquet(tmp_path / "test.parquet")
    a = tabular_file(train="train.csv", test="test.csv", target="y", id_columns=["id"], data_root=tmp_path)
    b = tabular_file(train="train.parquet", test="test.parquet", target="y", id_columns=["id"], data_root=tmp_path)
    for bundle in (a, b):
        assert bundle.input_spec["num_numeric"] == 2 and bundle.input_spec["categorical_cardinalities"] == (4, 4)
        assert Path(bundle.input_spec["schema_path"]).is_file()
    torch.testing.assert_close(a.test.numeric, b.test.numeric)
    torch.testing.assert_close(a.test.categorical, b.test.categorical)
    # the saved schema is reusable on its own: same arrays from the fixed schema
    c = tabular_file(train="train.csv", test="test.csv", target="y", id_columns=["id"], data_root=tmp_path,
                     schema=a.input_spec["schema_path"])
    torch.testing.assert_close(a.test.categorical, c.test.categorical)
    batch = a.collate(a.train.__getitems__([0, 3]))
    assert a.raw_features(batch["x"]).shape == (2, 2 + 4 + 4)


def test_adult_quirks_and_counts(data_root: Path) -> None:
    folder = data_root / "adult"
    test = read_adult(folder / "adult.test.gz", test_file=True)
    assert len(test) == 16281 and test["income"].value_counts().to_dict() == {"<=50K": 12435, ">50K": 3846}
    bundle = adult(data_root=data_root)
    assert len(bundle.train) == 32561 and len(bundle.test) == 16281  # no row dropped
    assert int(bundle.train.labels.sum()) == 7841 and int(bundle.test.labels.sum()) == 3846
    counts = bundle.input_spec["missing_counts"]
    assert counts["train"]["missing"]["workclass"] == 1836 and counts["test"]["missing"]["occupation"] == 966
    assert bundle.input_spec["num_numeric"] == 6 and len(bundle.input_spec["categorical_cardinalities"]) == 8
    with pytest.raises(DataError, match="expected the test file's first comment line"):
        read_adult(folder / "adult.data.gz", test_file=True)


def marginals_with_disjoint_columns(rows: int = 200) -> TabularMarginals:
    """Column j of the numeric marginal holds values in [100j, 100j + 10); categorical j in {10j+2, 10j+3}."""
    g = torch.Generator().manual_seed(0)
    numeric = torch.stack([100 * j + torch.randint(0, 10, (rows,), generator=g).float() for j in range(3)], 1)
    categorical = torch.stack([10 * j + 2 + (torch.arange(rows) < rows // 4).long() for j in range(2)], 1)
    return TabularMarginals(numeric, categorical)


def test_scarf_corruption_rate_and_values_from_the_column_marginal() -> None:
    torch.manual_seed(0)
    marginals = marginals_with_disjoint_columns()
    x = {"numeric": torch.full((4000, 3), -1.0), "categorical": torch.zeros(4000, 2, dtype=torch.long)}
    out = ScarfCorruption(0.6, marginals)(x)
    changed = torch.cat([out["numeric"] != -1, out["categorical"] != 0], 1)
    assert (changed.sum(1) == math.floor(0.6 * 5)).all()  # exactly ⌊c·F⌋ per row
    assert changed.float().mean(0).sub(0.6).abs().max() < 0.05  # every feature equally likely
    for j in range(3):
        values = out["numeric"][changed[:, j], j]
        assert ((values >= 100 * j) & (values < 100 * j + 10)).all()  # from its own column
    for j in range(2):
        values = out["categorical"][changed[:, 3 + j], j]
        assert set(values.unique().tolist()) <= {10 * j + 2, 10 * j + 3}
        share = (values == 10 * j + 3).float().mean().item()  # the marginal gives 10j+3 a 1/4 share
        assert abs(share - 0.25) < 4 * math.sqrt(0.25 * 0.75 / len(values))


def test_vime_mask_statistics() -> None:
    torch.manual_seed(1)
    mask = bernoulli_mask(20000, 7, 0.3, torch.device("cpu"))
    assert abs(mask.float().mean().item() - 0.3) < 0.005
    assert mask.float().mean(0).sub(0.3).abs().max() < 0.02  # per feature
    x = {"numeric": torch.ones(5000, 3), "categorical": torch.full((5000, 2), 5)}
    out = FeatureMask(0.3, "constant", None)(x)
    masked = torch.cat([out["numeric"] == 0, out["categorical"] == 0], 1).float()
    assert abs(masked.mean().item() - 0.3) < 0.01


def test_vime_loss_matches_the_paper_formula() -> None:
    torch.manual_seed(2)
    encoder = build_tabular_mlp(num_numeric=2, categorical_cardinalities=(3, 4), width=8, depth=1, norm="none")
    vime = build_vime(encoder=encoder, num_numeric=2, categorical_cardinalities=(3, 4), alpha=2.0,
                      marginals=marginals_with_disjoint_columns())
    x = {"numeric": torch.tensor([[0.5, -1.0], [2.0, 0.0]]), "categorical": torch.tensor([[0, 2], [1, 3]])}
    corrupted = {"numeric": torch.tensor([[0.5, 3.0], [2.0, 0.0]]), "categorical": torch.tensor([[2, 2], [1, 0]])}
    mask_loss, recon, h = vime.losses(x, corrupted)
    m = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.float)
    p = torch.sigmoid(vime.mask_head(h))
    expected_mask = -(m * p.log() + (1 - m) * (1 - p).log()).mean()
    xhat = vime.numeric_head(h)
    terms = [((x["numeric"][:, j] - xhat[:, j]) ** 2).mean() for j in range(2)]
    for j, head in enumerate(vime.categorical_heads):
        logp = head(h).log_softmax(1)
        terms.append(-logp[torch.arange(2), x["categorical"][:, j]].mean())
    torch.testing.assert_close(mask_loss, expected_mask)
    torch.testing.assert_close(recon, torch.stack(terms).mean())


def test_scarf_loss_is_infonce_of_clean_against_corrupted() -> None:
    torch.manual_seed(3)
    encoder = build_tabular_mlp(num_numeric=2, categorical_cardinalities=(3,), width=8, depth=1, norm="none")
    scarf = build_scarf(encoder=encoder, temperature=0.5, projection_dim=4, hidden_dim=8)
    clean = {"numeric": torch.randn(3, 2), "categorical": torch.tensor([[0], [1], [2]])}
    noisy = {"numeric": torch.randn(3, 2), "categorical": torch.tensor([[2], [1], [0]])}
    loss = scarf(ViewSet(global_views=[noisy], original=clean)).loss
    z = F.normalize(scarf.head(encoder(clean).pooled), dim=1)
    zt = F.normalize(scarf.head(encoder(noisy).pooled), dim=1)
    sim = z @ zt.T / 0.5
    expected = -(sim.diag() - sim.exp().sum(1).log()).mean()
    torch.testing.assert_close(loss, expected)


def test_encoders_shapes_tokens_and_reconstruction_target() -> None:
    x = {"numeric": torch.randn(5, 3), "categorical": torch.tensor([[0, 1], [2, 3], [1, 0], [4, 2], [0, 0]])}
    mlp = build_tabular_mlp(num_numeric=3, categorical_cardinalities=(5, 4), width=16, depth=2)
    assert mlp(x).pooled.shape == (5, 16)
    ft = build_ft_transformer(num_numeric=3, categorical_cardinalities=(5, 4), dim=16, depth=1, heads=4)
    out = ft(x)
    assert out.pooled.shape == (5, 16) and out.tokens.shape == (5, 5, 16)
    sequence = ft.tokenize(x)
    from omnissl.core.types import TokenSequence

    subset = ft.encode_tokens(TokenSequence(tokens=sequence.tokens[:, [0, 4]]))  # MAE runs on visible tokens
    assert subset.tokens.shape == (5, 2, 16)
    target = ft.reconstruction_target(x)
    assert target.shape == (5, 5, 5)
    torch.testing.assert_close(target[:, :3, 0], x["numeric"])
    assert target[:, 3:].sum(-1).eq(1).all() and target[1, 4, 3] == 1
    with pytest.raises(ValueError, match="built for 3 numeric"):
        mlp({"numeric": torch.randn(2, 4), "categorical": x["categorical"][:2]})


def test_label_subset_is_stratified_and_probe_runs() -> None:
    labels = torch.tensor([0] * 900 + [1] * 100)
    rows = label_subset(labels, 0.1, seed=0, min_per_class=2)
    assert len(rows) == 100 and int(labels[rows].sum()) == 10 and len(rows.unique()) == 100
    assert not torch.equal(rows, label_subset(labels, 0.1, seed=1, min_per_class=2))
    assert len(label_subset(labels, 0.001, seed=0, min_per_class=2)) == 4  # the floor: 2 rows per class
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(1000, 4, generator=g) + labels[:, None].float() * 3
    table = probe_at_fractions((feats, labels), (feats, labels), fractions=[0.1, 1.0], seeds=2, max_iter=50,
                               weight_decays=[1e-4])
    assert table["10% labels"]["mean"] > 0.95 and len(table["10% labels"]["per_seed"]) == 2


@pytest.mark.parametrize("recipe", ["scarf", "vime", "simclr", "mae"])
def test_recipe_trains_a_few_steps_on_adult(recipe: str, data_root: Path, tmp_path: Path) -> None:
    from omnissl.train.assemble import assemble
    from omnissl.core.config import load_recipe
    from omnissl.train.runner import train

    overrides = ["data.max_train=512", "data.max_test=128", "train.steps=4", "train.batch_size=64",
                 "train.log_every=1", "train.checkpoint_every=0", "train.max_minutes=null"]
    assembled = assemble(load_recipe(RECIPES / f"{recipe}.yaml", overrides), root=data_root)
    before = [p.detach().clone() for p in assembled.objective.encoder.parameters()]
    result = train(assembled, tmp_path / "run")
    assert result.steps_done == 4 and math.isfinite(result.last_logs["loss"])
    after = list(assembled.objective.encoder.parameters())
    assert any(not torch.equal(a.cpu(), b.cpu()) for a, b in zip(after, before))


def test_the_fitted_schema_is_copied_into_the_run_directory(tmp_path: Path) -> None:
    import json as _json

    from omnissl.train.assemble import assemble
    from omnissl.core.config import load_recipe
    from omnissl.train.runner import Trainer

    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes/tabular/scarf_breast_cancer.yaml",
                         ["train.steps=1", "train.batch_size=16", "train.knn_every=0"])
    Trainer(assemble(recipe), tmp_path / "run").fit()
    saved = _json.loads((tmp_path / "run" / "artifacts" / "schema.json").read_text())
    assert saved  # the schema the run's inputs were prepared with, next to its checkpoints
    assert (tmp_path / "run" / "artifacts" / "counts.json").is_file()
