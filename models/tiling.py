"""De-raining large images tile by tile with overlap, so memory stays bounded at any resolution.

The tile layout and blend weights are the frame contract's (`derain.frames.tile_origins`, `blend_ramp`): tiles
start on the network's size multiple and are blended with weights rising linearly over the overlap, as in the
runtime.
"""

from __future__ import annotations

import torch
from torch import nn

from derain.frames import blend_ramp, tile_origins
from derain.models.padding import pad_multiple, run_padded


def blend_window(height: int, width: int, overlap: int, device: torch.device) -> torch.Tensor:
    """(1, 1, h, w) weights rising linearly over `overlap` pixels at every edge (never zero)."""
    rows = torch.from_numpy(blend_ramp(height, overlap)).to(device)
    cols = torch.from_numpy(blend_ramp(width, overlap)).to(device)
    return (rows[:, None] * cols[None, :])[None, None]


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
    multiple = pad_multiple(model)
    out = torch.zeros_like(image)
    weight = torch.zeros_like(image[:, :1])
    for top in tile_origins(height, tile, overlap, multiple):
        for left in tile_origins(width, tile, overlap, multiple):
            window = image[:, :, top : top + tile, left : left + tile]
            restored = run_padded(model, window)
            w = blend_window(window.shape[2], window.shape[3], overlap, image.device)
            out[:, :, top : top + tile, left : left + tile] += restored * w
            weight[:, :, top : top + tile, left : left + tile] += w
    return out / weight
