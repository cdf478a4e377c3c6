"""Pixel losses for supervised de-raining (MPRNet's Charbonnier + edge loss)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from derain.quality.metrics import ssim_map


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


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log10(mean SSIM) (CSUD's SSIM loss)."""
    return -torch.log10(ssim_map(pred, target).mean().clamp_min(1e-6))


def psnr_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative PSNR up to a constant: (10 / ln 10) * mean over the batch of ln(MSE + 1e-8) (NAFNet/HINet)."""
    mse = (pred - target).pow(2).flatten(1).mean(1)
    return 10.0 / math.log(10.0) * torch.log(mse + 1e-8).mean()


def channel_consistency(clean: torch.Tensor, rainy: torch.Tensor) -> torch.Tensor:
    """Rain is achromatic: the residual clean - rainy should be equal in R, G and B."""
    d = clean - rainy
    r, g, b = d[:, 0], d[:, 1], d[:, 2]
    return F.l1_loss(r, g) + F.l1_loss(g, b) + F.l1_loss(b, r)


def lsgan(scores: torch.Tensor, real: bool) -> torch.Tensor:
    """Least-squares GAN loss toward 1 (real) or 0 (fake)."""
    return F.mse_loss(scores, torch.full_like(scores, 1.0 if real else 0.0))
