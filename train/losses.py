"""Pixel losses for supervised de-raining (MPRNet's Charbonnier + edge loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((pred - target)^2 + eps^2))."""
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def _laplacian(image: torch.Tensor) -> torch.Tensor:
    """Image minus its Gaussian-blurred (down, up-sampled) version, MPRNet's EdgeLoss kernel (5x5 binomial)."""
    k = image.new_tensor([0.05, 0.25, 0.4, 0.25, 0.05])
    kernel = (k[:, None] * k[None, :]).expand(image.shape[1], 1, 5, 5)

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), kernel, groups=image.shape[1])

    filtered = blur(image)
    down = filtered[:, :, ::2, ::2]
    up = torch.zeros_like(filtered)
    up[:, :, ::2, ::2] = down * 4
    return image - blur(up)


def edge_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Charbonnier loss between Laplacian (edge) maps."""
    return charbonnier(_laplacian(pred), _laplacian(target), eps)


def restoration_loss(outputs: list[torch.Tensor], target: torch.Tensor, edge_weight: float = 0.05) -> torch.Tensor:
    """Sum over stage outputs of Charbonnier + `edge_weight` x edge loss (MPRNet; single-output nets: once)."""
    return sum(charbonnier(o, target) + edge_weight * edge_loss(o, target) for o in outputs)
