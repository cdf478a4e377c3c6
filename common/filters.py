"""Image filters shared by networks and scorers (torch only)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gaussian_kernel(size: int, sigma: float, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> torch.Tensor:  # fmt: skip
    """The 1-D Gaussian (size,), centred, summing to 1; a 2-D window is its outer product (the one Gaussian of the
    project: SSIM's 11 / 1.5, NIQE's 7 / 7/6, the rain band's 15 / 9)."""
    x = torch.arange(size, dtype=dtype, device=device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def rain_band(image: torch.Tensor, size: int = 15, sigma: float = 9.0) -> torch.Tensor:
    """image - GaussianBlur(image) (reflect padding): the high-frequency band where rain streaks live."""
    g = gaussian_kernel(size, sigma, image.dtype, image.device)
    channels = image.shape[1]
    pad = size // 2
    mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    blurred = F.pad(image, (pad, pad, pad, pad), mode=mode)
    blurred = F.conv2d(blurred, g.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    blurred = F.conv2d(blurred, g.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)
    return image - blurred
