"""``torchvision_model``: any ``torchvision.models`` classification builder (ResNet, ConvNeXt, EfficientNet,
ViT, Swin, …) as an omnissl encoder, weights from a local state-dict file or, where the network is reachable,
its weights enum (``weights: IMAGENET1K_V2`` / ``DEFAULT``).

The classifier is the model's last ``nn.Linear`` (``fc``, ``classifier[-1]``, ``heads.head``, ``head``); it is
replaced by the identity, so ``pooled (B, D)`` is the feature the classifier read, ``D`` its ``in_features``.
Input: raw uint8 ``(B, C, H, W)``; ImageNet mean/std and torchvision's eval preset (shorter side 256, centre crop
224) run inside, or ``resize: N`` feeds ``N × N`` (e.g. 32 on a CPU).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from omnissl.core.errors import ConfigError
from omnissl.core.registry import ENCODERS
from omnissl.core.types import Encoder, EncoderOutput
from omnissl_image.pixels import IMAGENET_MEAN, IMAGENET_STD, PixelPreprocess


def _drop_classifier(model: nn.Module) -> tuple[str, int]:
    """Replace the last ``nn.Linear`` by ``nn.Identity``; return its dotted path and ``in_features``."""
    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    if not linears:
        raise ConfigError(f"encoder.model: {type(model).__name__} has no nn.Linear classifier to remove")
    path, linear = linears[-1]
    parent = model.get_submodule(path.rpartition(".")[0]) if "." in path else model
    child = path.rpartition(".")[2]
    if isinstance(parent, nn.Sequential):
        parent[int(child)] = nn.Identity()
    else:
        setattr(parent, child, nn.Identity())
    return path, int(linear.in_features)


def _state_dict(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]  # a training checkpoint {"state_dict": …, "epoch": …}
    if not isinstance(loaded, dict):
        raise ConfigError(f"encoder.weights: {path} holds a {type(loaded).__name__}, not a state dict")
    return loaded


class TorchvisionEncoder(Encoder):
    """A torchvision classifier without its last linear layer, plus its input pipeline."""

    modality = "image"

    def __init__(self, model: nn.Module, *, name: str, head: str, dim: int, pre: PixelPreprocess) -> None:
        super().__init__()
        self.model, self.name, self.head, self.embed_dim, self.pre = model, name, head, dim, pre
        self.input_contract = {"modality": "image", **pre.describe()}

    def forward(self, x: Tensor) -> EncoderOutput:
        return EncoderOutput(pooled=self.model(self.pre(x)).flatten(1))

    def export_pretrained(self, out_dir: Path) -> dict[str, Any]:
        """``out_dir/torchvision_model``: ``model.safetensors`` (the state dict with the classifier removed) and
        ``torchvision.json`` (builder name, removed layer, input pipeline)."""
        from safetensors.torch import save_model

        folder = out_dir / "torchvision_model"
        folder.mkdir(parents=True, exist_ok=True)
        save_model(self.model, str(folder / "model.safetensors"))
        meta = {"model": self.name, "removed_classifier": self.head, "embed_dim": self.embed_dim,
                "input": self.input_contract}
        (folder / "torchvision.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        owner, _, leaf = self.head.rpartition(".")
        target = f"model.get_submodule('{owner}')" if owner else "model"
        set_line = (f"{target}[{leaf}] = torch.nn.Identity()" if leaf.isdigit()
                    else f"setattr({target}, '{leaf}', torch.nn.Identity())")
        return {"library": "torchvision", "folder": "torchvision_model", "input": self.input_contract,
                "load": ("import torch, torchvision\nfrom safetensors.torch import load_file\n"
                         f"model = torchvision.models.get_model('{self.name}')\n{set_line}\n"
                         "model.load_state_dict(load_file('torchvision_model/model.safetensors'))\n"
                         "embedding = model.eval()(normalised_images)  # see 'input' for the normalisation")}


@ENCODERS.register("torchvision_model", modality="image",
                   description="any torchvision.models classifier; weights from a local state dict or its enum")
def build_torchvision_model(*, model: str = "resnet18", weights: str | None = None, pretrained: bool = True,
                            resize: int | None = None, image_mean: tuple[float, ...] = IMAGENET_MEAN,
                            image_std: tuple[float, ...] = IMAGENET_STD, in_channels: int = 3) -> Encoder:
    """``model``: a ``torchvision.models.list_models()`` name. ``weights``: ``null`` (random init), a local
    ``.pth``/``.pt``/``.safetensors`` state dict of that builder (``torch.load(weights_only=True)``), or a
    weights-enum member (``IMAGENET1K_V1``, ``DEFAULT``; downloads, needs a network). ``pretrained: false``
    ignores ``weights``. ``image_mean``/``image_std``: the normalisation the weights were trained with."""
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)
    if model not in names:
        raise ConfigError(f"encoder.model: '{model}' is not a torchvision.models classifier "
                          f"(e.g. {', '.join(n for n in names if n.startswith(model[:3]))[:120] or 'resnet18'})")
    file = Path(weights).expanduser() if weights and pretrained else None
    enum = None
    if file is not None and not file.is_file():
        members = torchvision.models.get_model_weights(model).__members__
        if weights not in members:
            raise ConfigError(f"encoder.weights: '{weights}' is neither a local state-dict file nor a weights "
                              f"enum of {model} ({', '.join(members)})")
        enum, file = torchvision.models.get_model_weights(model)[weights], None
    network = torchvision.models.get_model(model, weights=enum)
    if file is not None:
        try:
            result = network.load_state_dict(_state_dict(file), strict=True)
        except ConfigError:
            raise
        except Exception as error:  # noqa: BLE001 - pickle refusals, key/shape mismatches: all name the file
            detail = " ".join(str(error).split())[:240]
            raise ConfigError(f"encoder.weights: {file} does not load into torchvision '{model}' "
                              f"({type(error).__name__}: {detail})") from None
        del result
    head, dim = _drop_classifier(network)
    if enum is not None:  # the enum's own eval preset (resize, crop, mean/std)
        preset = enum.transforms()
        crop, short = int(preset.crop_size[0]), int(preset.resize_size[0])
        image_mean, image_std = tuple(preset.mean), tuple(preset.std)
    else:
        crop, short = 224, 256
    if in_channels not in (1, 3):
        raise ConfigError(f"encoder.model: torchvision classifiers take 3-channel images, the data has {in_channels}")
    pre = (PixelPreprocess(mean=image_mean, std=image_std, size=(resize, resize)) if resize is not None
           else PixelPreprocess(mean=image_mean, std=image_std, shortest_edge=short, crop=(crop, crop)))
    return TorchvisionEncoder(network, name=model, head=head, dim=dim, pre=pre)
