"""``timm``: any ``timm.create_model`` architecture (Wightman, "PyTorch Image Models") as an omnissl encoder —
ResNet, ConvNeXt, EfficientNet, ViT, … — with weights from a local file or folder, or timm's hub with
``weights: hub``.

Input: raw uint8 ``(B, C, H, W)``; the model's own ``pretrained_cfg`` pipeline runs inside (mean/std, and by
default timm's eval resize ``input_size / crop_pct`` + centre crop; ``resize: N`` feeds ``N × N`` instead, e.g. 32
for CIFAR on a CPU). Output: ``pooled (B, D)`` = ``forward_head(pre_logits=True)`` (the classifier is removed,
``num_classes=0``) and, where the feature width equals ``D``, ``tokens (B, N, D)``: the ``H·W`` cells of a CNN's
last feature map, or a ViT's patch tokens without its class/register tokens.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from torch import Tensor

from omnissl.core.errors import ConfigError
from omnissl.core.model_folders import error_summary
from omnissl.core.registry import ENCODERS
from omnissl.core.types import Encoder, EncoderOutput
from omnissl_image.pixels import PixelPreprocess

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


class TimmEncoder(Encoder):
    """A timm model without its classifier, plus its input pipeline (see the module doc)."""

    modality = "image"

    def __init__(self, model: Any, *, resize: int | None, name: str) -> None:
        super().__init__()
        from timm.data import resolve_model_data_config

        self.model, self.name = model, name
        self.embed_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
        self.output_kinds = frozenset({"pooled", "tokens"} if int(model.num_features) == self.embed_dim
                                      else {"pooled"})
        self.data_config = resolve_model_data_config(model)
        channels, height, width = self.data_config["input_size"]
        mode = str(self.data_config.get("interpolation", "bilinear"))
        mode = mode if mode in ("bilinear", "bicubic", "nearest") else "bilinear"
        common = {"mean": self.data_config["mean"], "std": self.data_config["std"], "mode": mode, "channels": int(channels)}
        if resize is not None:
            self.pre = PixelPreprocess(size=(resize, resize), **common)
        else:  # timm's eval transform: shorter side to size / crop_pct, then the centre crop
            scale = math.floor(height / float(self.data_config.get("crop_pct", 1.0)))
            self.pre = PixelPreprocess(shortest_edge=scale, crop=(int(height), int(width)), **common)
        self.input_contract = {"modality": "image", **self.pre.describe()}

    def forward(self, x: Tensor) -> EncoderOutput:
        features = self.model.forward_features(self.pre(x))
        pooled = self.model.forward_head(features, pre_logits=True)
        tokens = None
        if "tokens" in self.output_kinds:
            if features.ndim == 4:  # CNN map (B, C, H, W) → one token per cell
                tokens = features.flatten(2).transpose(1, 2)
            else:
                tokens = features[:, int(getattr(self.model, "num_prefix_tokens", 0)):]
        return EncoderOutput(pooled=pooled, tokens=tokens)

    def export_pretrained(self, out_dir: Path) -> dict[str, Any]:
        """``out_dir/timm_model``: timm's own Hub layout (``config.json`` with the architecture and
        ``pretrained_cfg``, ``model.safetensors``), loadable with plain timm."""
        from timm.models import save_for_hf

        folder = out_dir / "timm_model"
        save_for_hf(self.model, str(folder), safe_serialization=True)
        arch = self.model.default_cfg.get("architecture", self.name) if hasattr(self.model, "default_cfg") else self.name
        return {"library": "timm", "folder": "timm_model", "input": self.input_contract,
                "load": ("import timm\n"
                         f"model = timm.create_model('{arch}', pretrained=True, num_classes=0,\n"
                         "    pretrained_cfg_overlay=dict(file='timm_model/model.safetensors')).eval()\n"
                         "# or: timm.create_model('local-dir:timm_model', pretrained=True)\n"
                         "embedding = model(normalised_images)  # see 'input' for the normalisation")}


def _weights_source(weights: str, model: str) -> tuple[str, dict[str, Any]]:
    """``weights`` → (model name for ``create_model``, extra kwargs) for a file, a folder or the hub."""
    if weights == "hub":
        return model, {"pretrained": True}
    path = Path(weights).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ConfigError(f"encoder.weights: {path} has no config.json; a timm folder is what "
                              f"`huggingface-cli download timm/<name>` or timm's save_for_hf writes")
        return f"local-dir:{path}", {"pretrained": True}
    if path.is_file():
        if path.suffix not in WEIGHT_SUFFIXES:
            raise ConfigError(f"encoder.weights: {path} is not a weights file ({', '.join(WEIGHT_SUFFIXES)})")
        return model, {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    raise ConfigError(f"encoder.weights: '{weights}' is neither a local weights file/folder nor 'hub' "
                      f"(download from the Hugging Face Hub; needs a network)")


@ENCODERS.register("timm", modality="image",
                   description="any timm.create_model architecture; weights from a local file/folder or the hub")
def build_timm(*, model: str = "resnet18", weights: str | None = None, pretrained: bool = True,
               resize: int | None = None, model_args: dict[str, Any] | None = None,
               in_channels: int = 3) -> Encoder:
    """``model``: a timm name (``resnet50``, ``convnext_tiny.fb_in22k``, ``vit_small_patch16_224.dino`` …).
    ``weights``: ``null`` (random init), a local ``.safetensors``/``.pth`` state dict (loaded by timm with
    ``weights_only=True``, its classifier dropped), a folder with timm's ``config.json`` (then ``model`` must name
    the same architecture), or ``hub``. ``pretrained: false`` ignores ``weights`` (the random-init row).
    ``model_args``: extra ``create_model`` keywords (``img_size: 32`` for a ViT at CIFAR size)."""
    import timm

    if not timm.is_model(model.split(".")[0]) and not timm.is_model(model):
        close = timm.list_models(f"*{model.split('.')[0][:6]}*")[:5]
        raise ConfigError(f"encoder.model: '{model}' is not a timm architecture"
                          + (f" (close: {', '.join(close)})" if close else ""))
    name, extra = (model, {}) if weights is None or not pretrained else _weights_source(weights, model)
    if name.startswith("local-dir:"):
        config = json.loads((Path(name[len("local-dir:"):]) / "config.json").read_text(encoding="utf-8"))
        arch = str(config.get("architecture", "")).split(".")[0]
        if arch != model.split(".")[0]:
            raise ConfigError(f"encoder.weights: {weights} holds a '{arch}', but encoder.model is '{model}'")
    try:
        network = timm.create_model(name, num_classes=0, **extra, **(model_args or {}))
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - timm raises RuntimeError/KeyError/safetensors errors for bad files
        raise ConfigError(f"encoder.weights: timm could not build '{model}' from {weights or 'random init'} "
                          f"({error_summary(error)})") from None
    wanted = int(getattr(network, "in_chans", 3) or 3)
    if in_channels not in (1, wanted):
        raise ConfigError(f"encoder.model: '{model}' takes {wanted}-channel images, the data has {in_channels}")
    return TimmEncoder(network, resize=resize, name=model)
