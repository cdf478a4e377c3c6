"""Image filters shared by networks and scorers (torch only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rain_band(image: torch.Tensor, size: int = 15, sigma: float = 9.0) -> torch.Tensor:
    """image - GaussianBlur(image) (reflect padding): the high-frequency band where rain streaks live."""
    x = torch.arange(size, dtype=image.dtype, device=image.device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    channels = image.shape[1]
    pad = size // 2
    mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    blurred = F.pad(image, (pad, pad, pad, pad), mode=mode)
    blurred = F.conv2d(blurred, g.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    blurred = F.conv2d(blurred, g.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)
    return image - blurred
