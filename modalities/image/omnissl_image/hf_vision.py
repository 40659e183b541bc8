"""``hf_vision``: a ``transformers`` vision transformer — ViT (Dosovitskiy et al., 2021), DINOv2 (Oquab et al.,
2024), ViTMAE (He et al., 2022) or the CLIP image tower (Radford et al., 2021) — loaded from a local model folder
(``save_pretrained`` layout: ``config.json`` + weights + ``preprocessor_config.json``) or, with ``hub: true``, a
Hub id. Without ``path`` it is a small random ViT of the chosen family (the offline default the registry tests use).

Input: raw uint8 ``(B, C, H, W)``; the checkpoint's own image-processor pipeline (resize, centre crop, mean/std)
runs inside (:mod:`omnissl_image.pixels`). Output: ``pooled (B, D)`` (``cls``: the class token, post-layernorm for
CLIP; ``mean``: mean of the patch tokens) and ``tokens (B, N_patches, D)`` (class and register tokens removed), so
token objectives and probes read the patches.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from omnissl.core.errors import ConfigError
from omnissl.core.model_folders import error_summary, hub_or_local
from omnissl.core.registry import ENCODERS
from omnissl.core.types import Encoder, EncoderOutput
from omnissl_image.pixels import PixelPreprocess, from_hf_processor

Architecture = Literal["vit", "dinov2", "vit_mae", "clip_vision"]
SUPPORTED = ("vit", "dinov2", "dinov2_with_registers", "vit_mae", "clip", "clip_vision_model")


class HFVisionEncoder(Encoder):
    """A ``transformers`` ViT-family model + its image processor as an omnissl encoder (see the module doc)."""

    output_kinds = frozenset({"pooled", "tokens"})
    modality = "image"

    def __init__(self, model: Any, processor: Any, *, pool: Literal["cls", "mean"], resize: int | None,
                 source: str) -> None:
        super().__init__()
        self.model, self.processor, self.pool, self.source = model, processor, pool, source
        config = model.config
        self.model_type = str(config.model_type)
        self.embed_dim = int(config.hidden_size)
        self.prefix = 1 + int(getattr(config, "num_register_tokens", 0) or 0)
        self.pre: PixelPreprocess = from_hf_processor(processor, channels=int(config.num_channels), resize=resize)
        self.native = int(config.image_size)
        self.takes_interpolate = "interpolate_pos_encoding" in inspect.signature(model.forward).parameters
        if getattr(model, "pooler", None) is not None and self.model_type == "vit":
            model.pooler = None  # ViT's tanh pooler is never read; unused parameters would stall DDP
        if self.model_type == "vit_mae":
            model.config.mask_ratio = 0.0  # an encoder sees every patch; the order is fixed in forward
        self.input_contract = {"modality": "image", **self.pre.describe()}

    def hidden(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` raw → ``last_hidden_state (B, prefix + N, D)``."""
        pixels = self.pre(x)
        kwargs: dict[str, Any] = {}
        if self.takes_interpolate and tuple(pixels.shape[-2:]) != (self.native, self.native):
            kwargs["interpolate_pos_encoding"] = True
        if self.model_type == "vit_mae":
            # ViTMAE shuffles patches by random noise even at mask ratio 0; ascending noise keeps them in order.
            patch = int(self.model.config.patch_size)
            count = (pixels.shape[-2] // patch) * (pixels.shape[-1] // patch)
            kwargs["noise"] = torch.arange(count, device=pixels.device, dtype=pixels.dtype).expand(len(pixels), -1)
        return self.model(pixel_values=pixels, **kwargs).last_hidden_state

    def forward(self, x: Tensor) -> EncoderOutput:
        hidden = self.hidden(x)
        patches = hidden[:, self.prefix:]
        if self.pool == "mean":
            pooled = patches.mean(dim=1)
        else:
            pooled = hidden[:, 0]
            if "clip" in self.model_type:  # CLIP normalises the class token after the last block
                tower = getattr(self.model, "vision_model", self.model)  # transformers < 5 nests the tower
                pooled = tower.post_layernorm(pooled)
        return EncoderOutput(pooled=pooled, tokens=patches)

    def export_pretrained(self, out_dir: Path) -> dict[str, Any]:
        """``out_dir/hf_model``: ``save_pretrained`` of the model and of its image processor, so
        ``AutoModel`` + ``AutoImageProcessor`` load it with plain transformers."""
        folder = out_dir / "hf_model"
        self.model.save_pretrained(str(folder))
        self.processor.save_pretrained(str(folder))
        prefix = f"last_hidden_state[:, {self.prefix}:].mean(1)" if self.pool == "mean" else "last_hidden_state[:, 0]"
        return {"library": "transformers", "folder": "hf_model", "input": self.input_contract,
                "load": ("from transformers import AutoModel, AutoImageProcessor\n"
                         "model = AutoModel.from_pretrained('hf_model').eval()\n"
                         "processor = AutoImageProcessor.from_pretrained('hf_model')\n"
                         "inputs = processor(images=images, return_tensors='pt')\n"
                         f"embedding = model(**inputs).{prefix}  # pool = {self.pool}"
                         + ("  (CLIP: model.post_layernorm of it, i.e. pooler_output)" if "clip" in self.model_type
                            else ""))}


def _random_model(architecture: Architecture, *, image_size: int, patch_size: int, dim: int, depth: int,
                  heads: int, channels: int) -> Any:
    import transformers as tf

    if dim % heads:
        raise ConfigError(f"encoder.dim: {dim} is not a multiple of encoder.heads {heads}")
    if image_size % patch_size:
        raise ConfigError(f"encoder.patch_size: {patch_size} does not divide image_size {image_size}")
    common = {"image_size": image_size, "patch_size": patch_size, "num_channels": channels, "hidden_size": dim,
                  "num_hidden_layers": depth, "num_attention_heads": heads, "intermediate_size": 4 * dim}
    if architecture == "vit":
        return tf.ViTModel(tf.ViTConfig(**common), add_pooling_layer=False)
    if architecture == "dinov2":
        return tf.Dinov2Model(tf.Dinov2Config(**{k: v for k, v in common.items() if k != "intermediate_size"}))
    if architecture == "vit_mae":
        return tf.ViTMAEModel(tf.ViTMAEConfig(**common, mask_ratio=0.0))
    return tf.CLIPVisionModel(tf.CLIPVisionConfig(**common))


def _load_model(path: str, *, pretrained: bool, hub: bool) -> tuple[Any, Any, str]:
    import transformers as tf

    where, offline = hub_or_local(path, hub=hub, example="facebook/dinov2-small")
    try:
        config = tf.AutoConfig.from_pretrained(where, local_files_only=offline)
        if config.model_type not in SUPPORTED:
            raise ConfigError(f"encoder.path: {where} is a '{config.model_type}' model; hf_vision reads "
                              f"{', '.join(SUPPORTED)} (image models with a class token)")
        if config.model_type == "clip":  # a full CLIP checkpoint: keep the image tower
            cls = tf.CLIPVisionModel
            config = config.vision_config
        else:
            cls = tf.AutoModel
        if pretrained:
            model = cls.from_pretrained(where, local_files_only=offline)
        else:
            model = cls.from_config(config)
        processor = tf.AutoImageProcessor.from_pretrained(where, local_files_only=offline)
    except ConfigError:
        raise
    except OSError as error:
        raise ConfigError(f"encoder.path: {where} lacks a file hf_vision needs — config.json, weights and "
                          f"preprocessor_config.json (the image processor fixes the normalisation) "
                          f"({error_summary(error)})") from None
    except Exception as error:  # noqa: BLE001 - safetensors/pickle/JSON errors all mean "bad folder"
        raise ConfigError(f"encoder.path: {where} is not a loadable HF vision model ({error_summary(error)})") from None
    return model, processor, where


@ENCODERS.register("hf_vision", modality="image",
                   description="HF ViT / DINOv2 / ViTMAE / CLIP-vision from a local folder (hub: true for a Hub id)")
def build_hf_vision(*, path: str | None = None, pretrained: bool = True, hub: bool = False,
                    pool: Literal["cls", "mean"] = "cls", resize: int | None = None,
                    architecture: Architecture = "vit", image_size: int = 32, patch_size: int = 4, dim: int = 64,
                    depth: int = 2, heads: int = 2, in_channels: int = 3) -> Encoder:
    """``path``: a ``save_pretrained`` folder (what ``huggingface-cli download facebook/dinov2-small`` leaves),
    or a Hub id with ``hub: true``; ``pretrained: false`` keeps its architecture with random weights (the
    random-init row). ``resize``: square input size instead of the processor's (position embeddings are
    interpolated). Without ``path``: a random ``architecture`` ViT with ``image_size``/``patch_size``/``dim``/
    ``depth``/``heads`` (``image_size``, ``in_channels`` come from the data)."""
    try:  # not a dependency of the image plugin: the text/speech extras bring it
        import transformers  # noqa: F401
    except ImportError:
        raise ConfigError("encoder.name: 'hf_vision' needs transformers: pip install 'omnissl[text]'") from None
    if path is None:
        from transformers import ViTImageProcessor

        channels = 3 if in_channels == 1 else in_channels
        model = _random_model(architecture, image_size=image_size, patch_size=patch_size, dim=dim, depth=depth,
                              heads=heads, channels=channels)
        processor = ViTImageProcessor(size={"height": image_size, "width": image_size},
                                      image_mean=[0.5] * channels, image_std=[0.5] * channels)
        return HFVisionEncoder(model, processor, pool=pool, resize=resize, source=f"random {architecture}")
    model, processor, where = _load_model(path, pretrained=pretrained, hub=hub)
    wanted = int(model.config.num_channels)
    if in_channels not in (1, wanted):
        raise ConfigError(f"encoder.path: {where} takes {wanted}-channel images, the data has {in_channels}")
    return HFVisionEncoder(model, processor, pool=pool, resize=resize, source=where)
