"""What plugins tell the report about their inputs, so the report layer holds no modality knowledge.

Light on purpose (no matplotlib): plugins register at import time. Today one hook: which evaluation inputs can be
shown as pictures (the image plugin registers its ``(B, C, H, W)`` batches), which turns on the nearest-neighbour
retrieval figure and, for an MAE with patches, the reconstruction figure (:mod:`omnissl.report.extras`).
"""

from __future__ import annotations

from typing import Any, Callable

_IMAGE_INPUTS: list[Callable[[Any], bool]] = []


def register_image_inputs(matches: Callable[[Any], bool]) -> None:
    """``matches(x)``: True for an evaluation input batch that is a ``(B, C, H, W)`` picture with 1 or 3 channels."""
    _IMAGE_INPUTS.append(matches)


def shows_as_images(x: Any) -> bool:
    return any(matches(x) for matches in _IMAGE_INPUTS)
