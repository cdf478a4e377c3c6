"""A network's effective receptive field, measured from its impulse response.

How far a de-rainer looks decides how tiles must overlap to give its own result (`derain.frames.tile_origins`):
the gradient of one output pixel with respect to the input is the network's linearised impulse response around a
real frame; the radius that holds all but a sliver of its mass is the context each kept pixel needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from derain.models.padding import pad_multiple, prediction

GATES = ("shrink", "bypass")  # inference gates that zero small corrections (the realtime net's dry-frame settings)


@contextmanager
def gates_open(model: nn.Module) -> Iterator[nn.Module]:
    """The model with its dry-frame gates off: a gated pixel's gradient is zero, which says nothing of how far the
    network looks where it does correct."""
    saved = {name: getattr(model, name) for name in GATES if hasattr(model, name)}
    try:
        for name in saved:
            setattr(model, name, 0.0)
        yield model
    finally:
        for name, value in saved.items():
            setattr(model, name, value)


def impulse_response(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """|d out(centre) / d in| summed over channels, gates open: (H, W) for one image (1, 3, H, W) in [0, 1] (H, W
    multiples of the network's `pad_multiple`)."""
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise ValueError(f"expected one image (1, 3, H, W), found {tuple(image.shape)}")
    height, width = image.shape[-2:]
    parameter = next(model.parameters(), None)
    probe = image.detach().to(parameter.device if parameter is not None else "cpu").requires_grad_(True)
    with torch.enable_grad(), gates_open(model):
        prediction(model(probe))[0, :, height // 2, width // 2].sum().backward()
    return probe.grad[0].abs().sum(0).cpu()


def receptive_radius(model: nn.Module, image: torch.Tensor, mass: float = 0.99) -> int:
    """The smallest Chebyshev radius around the centre holding `mass` of the impulse response (pixels)."""
    response = impulse_response(model, image).double()
    height, width = response.shape
    rows = (torch.arange(height) - height // 2).abs()[:, None]
    cols = (torch.arange(width) - width // 2).abs()[None, :]
    radius = torch.maximum(rows, cols).flatten()
    order = torch.argsort(radius)
    cumulative = torch.cumsum(response.flatten()[order], 0)
    total = float(cumulative[-1])
    if total <= 0:
        return 0
    index = int(torch.searchsorted(cumulative, torch.tensor(mass * total, dtype=cumulative.dtype)))
    return int(radius[order][min(index, radius.numel() - 1)])


def tile_context(model: nn.Module, image: torch.Tensor, mass: float = 0.99) -> int:
    """The context tiles keep around each pixel: `receptive_radius` rounded up to the network's multiple."""
    multiple = pad_multiple(model)
    return -(-receptive_radius(model, image, mass) // multiple) * multiple
