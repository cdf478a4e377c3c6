"""NIQE (Mittal et al., 2013) in batched torch, with the pristine model fitted on our own clean images.

Per block of `block` x `block` pixels and at two scales (full, half): the MSCN map (7x7 Gaussian, sigma 7/6,
(I - mu) / (sigma + 1)), a GGD fit of the MSCN coefficients (shape, variance) and AGGD fits of the products of
horizontal, vertical and both diagonal neighbours (shape, mean, left variance, right variance): 18 features
per scale, 36 per block. The pristine model is the mean and covariance of the features of sharp blocks of clean
images; an image's score is the Mahalanobis-like distance between its block-feature Gaussian and the pristine
one. Lower is better. No downloaded parameters: `NIQEModel.fit(clean_images)` makes the model offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

_GAMMA = torch.arange(0.2, 10.0005, 0.001, dtype=torch.float64)
_R_GGD = (torch.lgamma(1 / _GAMMA) + torch.lgamma(3 / _GAMMA) - 2 * torch.lgamma(2 / _GAMMA)).exp()
_R_AGGD = (2 * torch.lgamma(2 / _GAMMA) - torch.lgamma(1 / _GAMMA) - torch.lgamma(3 / _GAMMA)).exp()


def _luma(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) luma in [0, 255] (BT.601), float64."""
    if images.shape[1] == 1:
        return images.double() * 255
    weights = images.new_tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)
    return (images.double() * weights).sum(1, keepdim=True) * 255


def _gaussian(device: torch.device) -> torch.Tensor:
    x = torch.arange(-3, 4, dtype=torch.float64, device=device)
    g = torch.exp(-(x**2) / (2 * (7 / 6) ** 2))
    kernel = g[:, None] * g[None, :]
    return (kernel / kernel.sum()).view(1, 1, 7, 7)


def mscn(luma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MSCN coefficients and the local standard deviation map."""
    kernel = _gaussian(luma.device)
    padded = F.pad(luma, (3, 3, 3, 3), mode="replicate")
    mu = F.conv2d(padded, kernel)
    var = F.conv2d(padded * padded, kernel) - mu * mu
    sigma = var.clamp_min(0).sqrt()
    return (luma - mu) / (sigma + 1), sigma


def _blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """(B, 1, H, W) -> (B, N, block*block), whole blocks only (row-major)."""
    b, _, h, w = x.shape
    rows, cols = h // block, w // block
    x = x[:, 0, : rows * block, : cols * block]
    return x.reshape(b, rows, block, cols, block).permute(0, 1, 3, 2, 4).reshape(b, rows * cols, block * block)


def _ggd(x: torch.Tensor) -> torch.Tensor:
    """GGD (shape, variance) per row of x (..., n) by moment matching."""
    var = x.pow(2).mean(-1)
    rho = var / x.abs().mean(-1).pow(2).clamp_min(1e-12)
    table = _R_GGD.to(x.device)
    shape = _GAMMA.to(x.device)[(rho[..., None] - table).abs().argmin(-1)]
    return torch.stack((shape, var), -1)


def _aggd(x: torch.Tensor) -> torch.Tensor:
    """AGGD (shape, mean, left variance, right variance) per row of x (..., n)."""
    neg, pos = (x < 0).double(), (x > 0).double()
    left = ((x * x * neg).sum(-1) / neg.sum(-1).clamp_min(1)).sqrt()
    right = ((x * x * pos).sum(-1) / pos.sum(-1).clamp_min(1)).sqrt()
    gamma_hat = left / right.clamp_min(1e-12)
    r_hat = x.abs().mean(-1).pow(2) / x.pow(2).mean(-1).clamp_min(1e-12)
    r_norm = r_hat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1).pow(2)
    table = _R_AGGD.to(x.device)
    alpha = _GAMMA.to(x.device)[(r_norm[..., None] - table).abs().argmin(-1)]
    ratio = torch.exp(torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha))
    scale = torch.exp(0.5 * (torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)))
    mean = (right - left) * ratio * scale
    return torch.stack((alpha, mean, left**2, right**2), -1)


def _scale_features(luma: torch.Tensor, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    coeffs, sigma = mscn(luma)
    shifts = {"h": (0, 1), "v": (1, 0), "d1": (1, 1), "d2": (1, -1)}
    feats = [_ggd(_blocks(coeffs, block))]
    for dy, dx in shifts.values():
        shifted = torch.roll(coeffs, shifts=(-dy, -dx), dims=(2, 3))
        feats.append(_aggd(_blocks(coeffs * shifted, block)))
    sharpness = _blocks(sigma, block).mean(-1)
    return torch.cat(feats, -1), sharpness


def block_features(images: torch.Tensor, block: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    """36 NIQE features per block: (B, N, 36), and each block's mean local sigma (B, N) for sharpness selection."""
    luma = _luma(images)
    if luma.shape[-1] < 2 * block or luma.shape[-2] < 2 * block:
        raise ValueError(f"NIQE needs images of at least {2 * block}x{2 * block} for block {block}")
    first, sharp = _scale_features(luma, block)
    half = F.interpolate(luma, scale_factor=0.5, mode="bicubic", align_corners=False, antialias=True)
    second, _ = _scale_features(half, block // 2)
    return torch.cat((first, second), -1), sharp


@dataclass
class NIQEModel:
    """Pristine multivariate Gaussian of block features; `score` is lower-is-better."""

    mean: torch.Tensor
    cov: torch.Tensor
    block: int = 96

    @classmethod
    def fit(cls, images: list[torch.Tensor] | torch.Tensor, block: int = 96, sharpness: float = 0.75) -> NIQEModel:
        """Fit on clean images ((3, H, W) each, any sizes): keep blocks sharper than `sharpness` x the image's max."""
        kept = []
        for image in images:
            feats, sharp = block_features(image[None], block)
            keep = sharp[0] > sharpness * sharp[0].max()
            kept.append(feats[0][keep])
        features = torch.cat(kept)
        if len(features) < 2:
            raise ValueError("NIQE fit needs at least two sharp blocks; give more or larger clean images")
        return cls(features.mean(0), torch.cov(features.T), block)

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], all the same size -> (B,) NIQE, lower is better."""
        feats, _ = block_features(images, self.block)
        mean = self.mean.to(feats.device)
        cov_p = self.cov.to(feats.device)
        scores = []
        for f in feats:
            mu = f.mean(0)
            cov = torch.cov(f.T) if len(f) > 1 else torch.zeros_like(cov_p)
            diff = mean - mu
            scores.append(torch.sqrt((diff @ torch.linalg.pinv((cov_p + cov) / 2) @ diff).clamp_min(0)))
        return torch.stack(scores).float()

    def state(self) -> dict:
        return {"mean": self.mean, "cov": self.cov, "block": self.block}

    def save(self, path: str | Path) -> None:
        from derain.outputs import atomic_torch_save

        atomic_torch_save(self.state(), path)

    @classmethod
    def load(cls, path: str | Path) -> NIQEModel:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return cls(state["mean"], state["cov"], int(state["block"]))
