"""KoLeo: the loss on three hand-placed points, and that it pushes the closest pair apart."""

from __future__ import annotations

import math

import torch

from omnissl.core.types import ViewSet
from omnissl.objectives.koleo import build_koleo, koleo_loss


def test_koleo_by_hand() -> None:
    # unit vectors at 0°, 90° and 180°+tiny offset: nearest neighbours 0↔1 (√2), 1→0 or 2 (√2), 2→1 (≈√2)
    angles = [0.0, math.pi / 2, math.pi * 0.75]
    z = torch.tensor([[math.cos(a), math.sin(a)] for a in angles]) * 3.0  # scale does not matter: normalised
    def chord(a: float, b: float) -> float:
        return 2 * math.sin(abs(a - b) / 2)
    nearest = [min(chord(a, b) for b in angles if b != a) for a in angles]
    manual = -sum(math.log(d + 1e-8) for d in nearest) / 3
    assert math.isclose(float(koleo_loss(z)), manual, rel_tol=1e-5)


def test_koleo_gradient_spreads_the_closest_pair(tiny_encoder) -> None:
    z = torch.tensor([[1.0, 0.0], [1.0, 0.1], [-1.0, 0.0]], requires_grad=True)
    koleo_loss(z).backward()
    with torch.no_grad():
        stepped = z - 0.01 * z.grad
    unit = torch.nn.functional.normalize
    assert (unit(stepped[0], dim=0) - unit(stepped[1], dim=0)).norm() > (unit(z[0], dim=0) - unit(z[1], dim=0)).norm()
    objective = build_koleo(encoder=tiny_encoder(in_features=4))
    out = objective(ViewSet(global_views=[torch.randn(5, 4), torch.randn(5, 4)]))
    assert torch.isfinite(out.loss) and "koleo" in out.logs
