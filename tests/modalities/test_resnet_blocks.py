"""The image plugin's residual blocks are torchvision's: same state-dict keys, same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet as tv

from omnissl_image import resnet_blocks as ours


@pytest.mark.parametrize("name", ["BasicBlock", "Bottleneck"])
@pytest.mark.parametrize("stride", [1, 2])
def test_block_matches_torchvision(name: str, stride: int) -> None:
    torch.manual_seed(0)
    theirs_cls, ours_cls = getattr(tv, name), getattr(ours, name)
    inplanes, planes = 8, 4
    out = planes * theirs_cls.expansion

    def shortcut() -> nn.Module:
        return nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    theirs = theirs_cls(inplanes, planes, stride, shortcut())
    mine = ours_cls(inplanes, planes, stride, shortcut())
    assert list(mine.state_dict()) == list(theirs.state_dict())
    with torch.no_grad():  # non-trivial BatchNorm statistics so the comparison is not of zeros
        for module in theirs.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
    mine.load_state_dict(theirs.state_dict())
    x = torch.randn(2, inplanes, 8, 8)
    for mode in ("eval", "train"):
        getattr(theirs, mode)(), getattr(mine, mode)()
        torch.testing.assert_close(mine(x), theirs(x))


def test_importing_the_image_plugin_does_not_import_torchvision_models() -> None:
    import subprocess
    import sys

    code = "import sys, omnissl_image; print('torchvision.models' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
