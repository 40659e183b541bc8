"""CLIP / SigLIP losses by formula, the temperature clamp, pairing by label, retrieval metrics, DDP gather."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn import functional as F

from omnissl.eval.retrieval import recall_at_k, zero_shot_accuracy
from omnissl.objectives.clip import MAX_LOG_SCALE, clip_loss
from omnissl.objectives.siglip import siglip_loss
from omnissl.data.paired import paired


def _pairs(seed: int = 0, b: int = 4, e: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(b, e, generator=g), dim=1), F.normalize(torch.randn(b, e, generator=g), dim=1)


def test_clip_loss_equals_its_formula_and_is_symmetric() -> None:
    a, b = _pairs()
    scale = 5.0
    expected = 0.0
    for i in range(4):
        row = [scale * float(a[i] @ b[j]) for j in range(4)]
        col = [scale * float(a[j] @ b[i]) for j in range(4)]
        expected += -(row[i] - math.log(sum(math.exp(v) for v in row)))
        expected += -(col[i] - math.log(sum(math.exp(v) for v in col)))
    got = clip_loss(a, b, log_scale=torch.tensor(math.log(scale)))
    assert math.isclose(got.item(), expected / 8, rel_tol=1e-5)
    assert math.isclose(got.item(), clip_loss(b, a, log_scale=torch.tensor(math.log(scale))).item(), rel_tol=1e-6)


def test_siglip_loss_equals_its_formula() -> None:
    a, b = _pairs(1)
    t, bias = 10.0, -3.0
    expected = 0.0
    for i in range(4):
        for j in range(4):
            z = 1.0 if i == j else -1.0
            expected += -math.log(1 / (1 + math.exp(-z * (t * float(a[i] @ b[j]) + bias))))
    got = siglip_loss(a, b, log_scale=torch.tensor(math.log(t)), bias=torch.tensor(bias))
    assert math.isclose(got.item(), expected / 4, rel_tol=1e-5)


def test_clip_temperature_stays_within_its_clamp() -> None:
    from omnissl.objectives.clip import CLIP
    from omnissl.core.types import Encoder, EncoderOutput, ViewSet

    class Tiny(Encoder):
        def __init__(self) -> None:
            super().__init__()
            self.embed_dim = 4
            self.linear = torch.nn.Linear(3, 4)

        def forward(self, x: torch.Tensor) -> EncoderOutput:
            return EncoderOutput(pooled=self.linear(x))

    clip = CLIP({"a": Tiny(), "b": Tiny()}, embed_dim=4, init_temperature=0.07, frozen=[])
    optimizer = torch.optim.SGD(clip.parameters(), lr=50.0)
    x = torch.randn(8, 3)
    for step in range(5):
        loss = clip({"a": ViewSet([x]), "b": ViewSet([x])}).loss
        optimizer.zero_grad()
        (-loss).backward()  # push the scale as hard as possible
        optimizer.step()
        clip.on_step_end(step=step, total_steps=5)
        assert 0.0 <= clip.log_scale.item() <= MAX_LOG_SCALE + 1e-6


def test_pairing_by_label_is_reproducible_and_never_crosses_splits(data_root: Path) -> None:
    spec = {"image": {"name": "mnist"}, "audio": {"name": "fsdd", "label": "digit"}}
    first = paired(sources=spec, data_root=data_root, seed=3)
    again = paired(sources=spec, data_root=data_root, seed=3)
    other = paired(sources=spec, data_root=data_root, seed=4)
    assert torch.equal(first.train.partner["audio"], again.train.partner["audio"])
    assert not torch.equal(first.train.partner["audio"], other.train.partner["audio"])
    for split in ("train", "test"):
        dataset = getattr(first, split)
        audio = dataset.sources["audio"]
        # every partner index points into the same split, and carries the same digit
        assert int(dataset.partner["audio"].max()) < len(audio)
        assert torch.equal(audio.labels[dataset.partner["audio"]], dataset.labels)
    assert len(first.test.sources["audio"]) == 300  # FSDD's official test split, not its train split
    batch = first.collate([first.train[i] for i in range(4)])
    assert batch["x"]["image"].shape[0] == 4 and batch["x"]["audio"]["wave"].shape[0] == 4


def test_recall_and_zero_shot_on_known_cases() -> None:
    q = torch.eye(4)
    g = torch.eye(4)[[0, 2, 1, 3]]  # items 1 and 2 swapped in the gallery
    labels = torch.tensor([0, 1, 1, 2])
    inst = recall_at_k(q, g, labels, labels[[0, 2, 1, 3]], ks=(1, 2))
    assert inst["R@1"] == 0.5  # only rows 0 and 3 find their own pair first
    cls = recall_at_k(q, g, labels, labels, ks=(1,), by="class")
    assert cls["R@1"] == 1.0  # the swapped items share label 1
    assert zero_shot_accuracy(torch.eye(3), torch.tensor([0, 1, 2]), torch.eye(3), torch.tensor([0, 1, 2])) == 1.0


def _gather_worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    from omnissl.core.collectives import gather_cat

    local = torch.full((2, 3), float(rank + 1), requires_grad=True)
    gathered = gather_cat(local)
    (gathered * torch.arange(gathered.numel()).view_as(gathered).float()).sum().backward()
    torch.save({"shape": tuple(gathered.shape), "values": gathered.detach(), "grad": local.grad}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_gather_sums_every_ranks_gradient_into_the_local_slice(tmp_path: Path) -> None:
    """CLIP/SigLIP gather with ``gather_cat``: each of the W ranks computes the full loss, so a rank's rows must get
    the gradient of all W losses (DDP's 1/W averaging then gives the single-process gradient). The former
    constant-gather kept only the local loss's gradient, 1/W too small."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_gather_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        result = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert result["shape"] == (4, 3)
        assert torch.equal(result["values"], torch.tensor([1.0, 1.0, 2.0, 2.0]).repeat_interleave(3).view(4, 3))
        expected = torch.arange(12).view(4, 3).float()[2 * rank: 2 * rank + 2]
        assert torch.equal(result["grad"], 2 * expected)
