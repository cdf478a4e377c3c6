"""De-raining large images tile by tile with overlap, so memory stays bounded at any resolution."""

from __future__ import annotations

import torch
from torch import nn

from derain.models.padding import run_padded


def _starts(size: int, tile: int, stride: int) -> list[int]:
    if size <= tile:
        return [0]
    starts = list(range(0, size - tile, stride))
    starts.append(size - tile)
    return starts


def blend_window(height: int, width: int, overlap: int, device: torch.device) -> torch.Tensor:
    """(1, 1, h, w) weights rising linearly over `overlap` pixels at every edge (never zero)."""

    def ramp(n: int) -> torch.Tensor:
        position = torch.arange(n, device=device, dtype=torch.float32)
        distance = torch.minimum(position + 1, n - position)
        return (distance / max(overlap, 1)).clamp(max=1.0)

    return (ramp(height)[:, None] * ramp(width)[None, :])[None, None]


@torch.no_grad()
def tiled_forward(model: nn.Module, image: torch.Tensor, tile: int = 512, overlap: int = 32) -> torch.Tensor:
    """De-rain (B, 3, H, W) in overlapping `tile` x `tile` windows blended with linear ramps.

    Images no larger than one tile run in one pass. `overlap` should exceed the network's receptive field
    margin for seams to vanish; each tile is padded to the network's multiple by `run_padded`.
    """
    if overlap * 2 >= tile:
        raise ValueError(f"overlap ({overlap}) must be less than half the tile ({tile})")
    _, _, height, width = image.shape
    if height <= tile and width <= tile:
        return run_padded(model, image)
    stride = tile - overlap
    out = torch.zeros_like(image)
    weight = torch.zeros_like(image[:, :1])
    for top in _starts(height, tile, stride):
        for left in _starts(width, tile, stride):
            window = image[:, :, top : top + tile, left : left + tile]
            restored = run_padded(model, window)
            w = blend_window(window.shape[2], window.shape[3], overlap, image.device)
            out[:, :, top : top + tile, left : left + tile] += restored * w
            weight[:, :, top : top + tile, left : left + tile] += w
    return out / weight
