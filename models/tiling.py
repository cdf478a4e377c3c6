"""De-raining large images tile by tile, so memory stays bounded at any resolution, with the network's own result.

The tile layout and weights are the frame contract's (`derain.frames.tile_origins`, `tile_weights`): tiles start on
the network's size multiple, the last one ends flush with the frame, and each tile gives only the pixels that saw
`context` pixels of the frame around them (the network's receptive-field radius, `derain.models.receptive`).
"""

from __future__ import annotations

import torch
from torch import nn

from derain.frames import tile_origins, tile_weights
from derain.models.padding import pad_multiple, run_padded


def blend_window(top: int, left: int, rows: int, cols: int, size: tuple[int, int], context: int,
                 device: torch.device) -> torch.Tensor:  # fmt: skip
    """(1, 1, rows, cols) weights of the tile at (top, left) of an image of `size` (`derain.frames.tile_weights`)."""
    weights_rows = torch.from_numpy(tile_weights(top, rows, size[0], context)).to(device)
    weights_cols = torch.from_numpy(tile_weights(left, cols, size[1], context)).to(device)
    return (weights_rows[:, None] * weights_cols[None, :])[None, None]


@torch.no_grad()
def tiled_forward(model: nn.Module, image: torch.Tensor, tile: int = 512, context: int = 96) -> torch.Tensor:
    """De-rain (B, 3, H, W) in `tile` x `tile` windows that keep `context` pixels around every pixel they give.

    Images no larger than one tile run in one pass. With `context` at least the network's receptive-field radius the
    result is the whole image's; each tile is padded to the network's multiple by `run_padded`.
    """
    multiple = pad_multiple(model)
    tile = tile // multiple * multiple
    _, _, height, width = image.shape
    if height <= tile and width <= tile:
        return run_padded(model, image)
    out = torch.zeros_like(image)
    weight = torch.zeros_like(image[:, :1])
    for top in tile_origins(height, tile, context, multiple):
        for left in tile_origins(width, tile, context, multiple):
            window = image[:, :, top : top + tile, left : left + tile]
            restored = run_padded(model, window)
            rows, cols = window.shape[2:]
            w = blend_window(top, left, rows, cols, (height, width), context, image.device)
            out[:, :, top : top + rows, left : left + cols] += restored * w
            weight[:, :, top : top + rows, left : left + cols] += w
    return out / weight
