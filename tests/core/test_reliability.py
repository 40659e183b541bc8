"""Faults: corrupted checkpoints, NaN losses, collapse, and property tests over the recipe loader and image ops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnissl.train.assemble import assemble
from omnissl.core.config import recipe_from_dict
from omnissl.core.errors import CheckpointError, OmnisslError
from omnissl.core.registry import AUGMENTATIONS
from omnissl.train import checkpoint as ckpt
from omnissl.train.runner import CollapseError, NonFiniteLossError, Trainer, read_metrics
from omnissl.core.types import ObjectiveOutput

RAW = {"name": "rel", "data": {"name": "digits", "upscale": 8}, "encoder": {"name": "resnet10", "width": 4},
       "augment": {"global": {"ops": [{"name": "horizontal_flip"}]}},
       "objective": {"name": "simclr", "hidden_dim": 16, "projection_dim": 8},
       "train": {"steps": 4, "batch_size": 16, "log_every": 1, "checkpoint_every": 1, "keep_last": 3}}


def _assembled(**train: Any) -> Any:
    return assemble(recipe_from_dict({**RAW, "train": {**RAW["train"], **train}}))


def test_truncated_checkpoint_is_detected_and_the_previous_one_offered(tmp_path: Path) -> None:
    Trainer(_assembled(), tmp_path / "run").fit()
    checkpoints = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in checkpoints] == ["step_00000002.pt", "step_00000003.pt", "step_00000004.pt"]
    latest = checkpoints[-1]
    latest.write_bytes(latest.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"unreadable.*step_00000003\.pt"):
        ckpt.load_checkpoint(latest)
    assert ckpt.load_checkpoint(checkpoints[-2])["step"] == 3


def test_a_checkpoint_with_pickled_objects_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "step_00000001.pt"
    torch.save({"step": 1, "model": {}, "evil": Path("/")}, path)  # a non-tensor object needs unpickling
    with pytest.raises(CheckpointError, match="refused: contains Python objects"):
        ckpt.load_checkpoint(path)


def _poison(assembled: Any, *, at_calls: set[int], embeddings: torch.Tensor | None = None) -> None:
    objective = assembled.objective
    original = objective.forward
    calls = {"n": 0}

    def forward(views: Any) -> ObjectiveOutput:
        out = original(views)
        calls["n"] += 1
        if calls["n"] in at_calls:
            out.loss = out.loss * float("nan")
        if embeddings is not None:
            out.embeddings = embeddings
        return out

    objective.forward = forward  # type: ignore[method-assign]


def test_nan_loss_stops_with_step_and_last_good_checkpoint(tmp_path: Path) -> None:
    assembled = _assembled()
    _poison(assembled, at_calls={3})
    # The third step is "step 3", as metrics.jsonl numbers it (1-based): its last record is step 2.
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*last good checkpoint: .*step_00000002\.pt"):
        Trainer(assembled, tmp_path / "run").fit()
    assert max(r["step"] for r in read_metrics(tmp_path / "run") if "loss" in r) == 2


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_fp16_with_a_grad_scaler_still_sees_a_nan_loss(tmp_path: Path, mode: str) -> None:
    assembled = _assembled(precision="fp16", nonfinite=mode, max_nonfinite_skips=1)
    _poison(assembled, at_calls={2})
    trainer = Trainer(assembled, tmp_path / "run")
    assert trainer.scaler.is_enabled()
    if mode == "stop":
        with pytest.raises(NonFiniteLossError, match=r"non-finite loss or gradient at step 2 "):
            trainer.fit()
    else:
        assert trainer.fit().steps_done == 4
        assert trainer.nonfinite_skips == 1
        assert "step 2" in (tmp_path / "run" / "notes.log").read_text()


def _finite(path: Path) -> bool:
    model = ckpt.load_checkpoint(path)["model"]
    return all(bool(v.isfinite().all()) for v in model.values() if v.is_floating_point())


def _update_overflows_at(trainer: Trainer, *, step: int) -> None:
    """The optimizer's ``step``-th update leaves an inf weight, as a huge learning rate eventually does (the audit's
    lr 1e6 run), while the loss and gradients of that step are still finite."""
    original, calls = trainer.optimizer.step, {"n": 0}

    def overflowing_step(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == step:
            with torch.no_grad():
                next(trainer.objective.parameters()).view(-1)[0] = float("inf")
        return result

    trainer.optimizer.step = overflowing_step  # type: ignore[method-assign]


@pytest.mark.parametrize("mode", ["stop", "skip"])
def test_an_update_that_makes_the_weights_non_finite_stops_and_is_never_checkpointed(tmp_path: Path,
                                                                                     mode: str) -> None:
    trainer = Trainer(_assembled(nonfinite=mode, max_nonfinite_skips=3), tmp_path / "run")
    _update_overflows_at(trainer, step=2)
    with pytest.raises(NonFiniteLossError, match=r"non-finite weights after the update of step 2 .*"
                                                 r"last good checkpoint: .*step_00000001\.pt"):
        trainer.fit()
    checkpoints = ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in checkpoints] == ["step_00000001.pt"] and all(_finite(p) for p in checkpoints)


def test_a_checkpoint_of_non_finite_weights_is_refused(tmp_path: Path) -> None:
    trainer = Trainer(_assembled(), tmp_path / "run")
    with torch.no_grad():
        next(trainer.objective.parameters()).view(-1)[:3] = float("nan")
    with pytest.raises(NonFiniteLossError, match=r"refusing to save the step 0 checkpoint: 3 non-finite"):
        trainer.save_checkpoint()
    assert not ckpt.list_checkpoints(tmp_path / "run" / "checkpoints")


def test_nan_loss_can_be_skipped_a_bounded_number_of_times(tmp_path: Path) -> None:
    assembled = _assembled(nonfinite="skip", max_nonfinite_skips=1)
    _poison(assembled, at_calls={2})
    before = {k: v.clone() for k, v in assembled.objective.state_dict().items()}
    result = Trainer(assembled, tmp_path / "run").fit()
    assert result.steps_done == 4
    assert "non-finite loss" in (tmp_path / "run" / "notes.log").read_text()
    after = assembled.objective.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the other steps still trained
    assembled = _assembled(nonfinite="skip", max_nonfinite_skips=1)
    _poison(assembled, at_calls={2, 3})
    with pytest.raises(NonFiniteLossError):
        Trainer(assembled, tmp_path / "run2").fit()


def test_stop_on_collapse(tmp_path: Path) -> None:
    assembled = _assembled(stop_on_collapse=True, monitor_every=1)
    _poison(assembled, at_calls=set(), embeddings=torch.ones(16, 32))
    with pytest.raises(CollapseError, match="collapse at step 1"):
        Trainer(assembled, tmp_path / "run").fit()
    assert any("collapse/effective_rank" in r for r in read_metrics(tmp_path / "run"))


_leaf = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5))
_tree = st.recursive(_leaf, lambda children: st.one_of(st.lists(children, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), children, max_size=4)),
                     max_leaves=12)
_keys = st.sampled_from(["name", "data", "encoder", "objective", "train", "eval", "augment", "towers", "seed",
                         "variants", "plugins", "steps", "lr", "global", "ops", "count"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_tree, st.dictionaries(_keys, _tree, max_size=6)))
def test_recipe_loader_never_crashes_with_a_foreign_exception(raw: Any) -> None:
    try:
        recipe_from_dict(raw)
    except OmnisslError:
        pass


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from([e.name for e in AUGMENTATIONS.entries() if e.modality == "image"]),
       batch=st.integers(1, 5), channels=st.sampled_from([1, 3]), height=st.integers(4, 24), width=st.integers(4, 24),
       as_uint8=st.booleans())
def test_image_ops_keep_shape_on_random_inputs(name: str, batch: int, channels: int, height: int, width: int,
                                               as_uint8: bool) -> None:
    op = AUGMENTATIONS.get(name).builder(**({"size": 8} if name == "random_resized_crop" else {}))
    x = torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8)
    out = op(x if as_uint8 else x.float() / 255)
    expected = (batch, channels, 8, 8) if name == "random_resized_crop" else (batch, channels, height, width)
    assert out.shape == expected and torch.isfinite(out).all()
