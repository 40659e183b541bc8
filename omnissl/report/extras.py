"""Per-objective report extras: nearest-neighbour retrieval for image runs and MAE reconstructions.

Both only apply when a plugin declared the evaluation input picture-like (the image plugin: ``(B, C, H, W)`` with
1 or 3 channels, through :mod:`omnissl.report.hooks`); other modalities get the curves, the map and the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from omnissl.report.plots import _save, plt
from omnissl.core.types import class_name
from omnissl.report.hooks import shows_as_images


def is_image_batch(x: Any) -> bool:
    """Whether a plugin declared this input picture-like (:func:`omnissl.report.hooks.register_image_inputs`)."""
    return shows_as_images(x)


def to_display(images: Tensor) -> np.ndarray:
    """``(B, C, H, W)`` uint8 / float → ``(B, H, W, C)`` floats in [0, 1] (each image min-max scaled if float)."""
    x = images.detach().float().cpu()
    if images.dtype == torch.uint8:
        x = x / 255.0
    else:
        low = x.amin(dim=(1, 2, 3), keepdim=True)
        high = x.amax(dim=(1, 2, 3), keepdim=True)
        x = (x - low) / (high - low).clamp_min(1e-6)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return x.permute(0, 2, 3, 1).clamp(0, 1).numpy()


def stratified_queries(*, labels: Tensor, count: int, seed: int) -> Tensor:
    """Indices of ``count`` query rows spread over the classes: one per class in a seeded random class order (then
    round again), a seeded random member each. The first rows of a test split are often one class (CIFAR's
    first six were all airplanes), which showed nothing about the other classes."""
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    classes = classes[torch.randperm(len(classes), generator=generator)]
    pools = {int(c): (labels == c).nonzero().flatten() for c in classes}
    pools = {c: rows[torch.randperm(len(rows), generator=generator)].tolist() for c, rows in pools.items()}
    chosen: list[int] = []
    while len(chosen) < min(count, len(labels)):
        for c in (int(c) for c in classes):
            if pools[c] and len(chosen) < count:
                chosen.append(pools[c].pop())
    return torch.tensor(chosen, dtype=torch.long)


def _short(name: str, width: int = 12) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_retrieval(query_images: Tensor, query_labels: Tensor, query_features: Tensor, bank_images: Tensor,
                   bank_labels: Tensor, bank_features: Tensor, path: Path, *, queries: int = 6,
                   neighbours: int = 5, class_names: Sequence[str] | None = None, seed: int = 0) -> Path:
    """Each row: a test image (queries stratified by class, seeded), then its ``neighbours`` nearest training
    images by cosine similarity of the frozen features. A green title means the neighbour has the query's label,
    red that it does not; titles use the dataset's class names when it publishes them."""
    rows_q = stratified_queries(labels=query_labels, count=queries, seed=seed)
    query_images, query_labels, query_features = query_images[rows_q], query_labels[rows_q], query_features[rows_q]
    q = torch.nn.functional.normalize(query_features.float(), dim=1)
    bank = torch.nn.functional.normalize(bank_features.float(), dim=1)
    similarity, index = (q @ bank.T).topk(min(neighbours, bank.shape[0]), dim=1)
    shown_q, shown_bank = to_display(query_images), to_display(bank_images)
    rows, cols = q.shape[0], index.shape[1] + 1
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(shown_q[r])
        axes[r, 0].set_title(f"query: {_short(class_name(names=class_names, label=int(query_labels[r])))}",
                             fontsize=7)
        for c in range(index.shape[1]):
            j = int(index[r, c])
            same = int(bank_labels[j]) == int(query_labels[r])
            axes[r, c + 1].imshow(shown_bank[j])
            label = _short(class_name(names=class_names, label=int(bank_labels[j])))
            axes[r, c + 1].set_title(f"{label} ({similarity[r, c]:.2f})", fontsize=7,
                                     color="green" if same else "red")
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle("nearest training neighbours of test images (label, cosine)", fontsize=9)
    return _save(fig, path)


def unpatchify(patches: Tensor, *, patch_size: int, channels: int, height: int, width: int) -> Tensor:
    """Inverse of the ViT ``reconstruction_target`` layout: ``(B, N, p·p·C)`` → ``(B, C, H, W)``."""
    b, p = patches.shape[0], patch_size
    grid = patches.reshape(b, height // p, width // p, p, p, channels)
    return grid.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, height, width)


@torch.no_grad()
def plot_mae_reconstructions(objective: Any, images: Tensor, path: Path, *, count: int = 6,
                             seed: int = 0) -> Path | None:
    """Original | visible patches | reconstruction (visible patches pasted back), for an image MAE run.

    With ``norm_target`` the decoder predicts per-patch normalised pixels; they are mapped back with each
    patch's own mean/std, as in the MAE paper's figures.
    """
    from omnissl.objectives.mae import MAE, encode_visible

    encoder = getattr(objective, "encoder", None)
    if not isinstance(objective, MAE) or not hasattr(encoder, "patch_size") or not is_image_batch(images):
        return None
    was_training = objective.training
    objective.eval()
    try:
        x = images[:count].to(next(objective.parameters()).device)
        state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # the same masks every time the report is written
        sequence = encoder.tokenize(x)
        target = encoder.reconstruction_target(x).float()
        out, plan = encode_visible(encoder, sequence, ratio=objective.mask_ratio)
        torch.random.set_rng_state(state)
        prediction = objective.decoder(out.tokens, plan, length=sequence.tokens.shape[1],
                                       padding_mask=sequence.padding_mask).float()
    finally:
        objective.train(was_training)
    if objective.norm_target:
        mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
        prediction = prediction * (var + 1e-6).sqrt() + mean
    masked = plan.masked.unsqueeze(-1)
    pasted = torch.where(masked, prediction, target)
    visible = torch.where(masked, torch.full_like(target, float(target.min())), target)
    _, c, h, w = x.shape
    shape = {"patch_size": int(encoder.patch_size), "channels": c, "height": h, "width": w}
    columns = [unpatchify(t, **shape) for t in (target, visible, pasted)]
    shown = [to_display(col) for col in columns]
    fig, axes = plt.subplots(x.shape[0], 3, figsize=(4.2, 1.4 * x.shape[0]), squeeze=False)
    for r in range(x.shape[0]):
        for col, title in enumerate(("original", f"visible ({1 - objective.mask_ratio:.0%})", "reconstruction")):
            axes[r, col].imshow(shown[col][r])
            axes[r, col].set_axis_off()
            if r == 0:
                axes[r, col].set_title(title, fontsize=8)
    return _save(fig, path)
