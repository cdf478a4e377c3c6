"""PSNR and SSIM in the two conventions of the de-raining literature, batched in torch.

- "rgb": as the CLGID code computes them. Images clamped to [0, 1]; PSNR = 20 log10(1 / RMSE) over all RGB
  values; SSIM per RGB channel with an 11x11 Gaussian window (sigma 1.5), C1 = 0.01^2, C2 = 0.03^2, zero-padded
  'same' filtering, averaged over channels and pixels.
- "y": the MATLAB convention. Y = 16 + 65.481 R + 128.553 G + 24.966 B (rgb2ycbcr, R, G, B in [0, 1]); PSNR with
  peak 255 on Y; SSIM of Y with the same Gaussian window, C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, 'valid'
  filtering (the border of 5 pixels is left out), as Wang's ssim.m.

All functions take (B, 3, H, W) float tensors in [0, 1] and return per-image values (B,), computed in float64.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from derain.filters import gaussian_kernel

CONVENTIONS = ("rgb", "y")
WINDOW = 11
SIGMA = 1.5


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 4 or pred.shape[1] != 3:
        raise ValueError(
            f"expected two (B, 3, H, W) tensors of one shape, found {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    if min(pred.shape[-2:]) < WINDOW:
        raise ValueError(f"SSIM needs images of at least {WINDOW}x{WINDOW}, found {tuple(pred.shape[-2:])}")


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) MATLAB-convention luma in [16, 235]."""
    weights = image.new_tensor([65.481, 128.553, 24.966]).view(1, 3, 1, 1)
    return 16.0 + (image * weights).sum(dim=1, keepdim=True)


def prepare(pred: torch.Tensor, target: torch.Tensor, convention: str) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Checked, clamped float64 images in the convention's space (RGB, or MATLAB luma) and their peak value."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; known: {', '.join(CONVENTIONS)}")
    _check(pred, target)
    pred = pred.detach().double().clamp(0, 1)
    target = target.detach().double().clamp(0, 1)
    if convention == "y":
        return rgb_to_y(pred), rgb_to_y(target), 255.0
    return pred, target, 1.0


def psnr(pred: torch.Tensor, target: torch.Tensor, convention: str = "rgb") -> torch.Tensor:
    """Per-image PSNR in dB (B,). Identical images give +inf."""
    pred, target, peak = prepare(pred, target, convention)
    mse = (pred - target).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(peak**2 / mse)


def gaussian_window(channels: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """The 11x11 Gaussian window as one 1-D kernel (channels, 1, 1, 11); the 2-D window is its outer product."""
    return gaussian_kernel(WINDOW, SIGMA, dtype, device).expand(channels, 1, 1, WINDOW).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, peak: float = 1.0, padding: int = WINDOW // 2,
             separable: bool = True) -> torch.Tensor:  # fmt: skip
    """The SSIM map of (B, C, H, W) images with values up to `peak` (Gaussian window 11, sigma 1.5), differentiable:
    the one SSIM of the project (metrics take its mean, `train.losses.ssim_loss` its log).

    Args:
        padding: zero padding of the window ("same" map: 5; the MATLAB "valid" convention: 0).
        separable: a row then a column pass (fast, equal to the 2-D window, zero padding commutes with it); False
            runs the unfactored 11x11 window (the definition, for checking).
    """
    channels = x.shape[1]
    row = gaussian_window(channels, x.dtype, x.device)
    column = row.transpose(2, 3)
    window = None if separable else (column * row).contiguous()  # (C, 1, 11, 11): the outer product

    def filt(t: torch.Tensor) -> torch.Tensor:
        if window is not None:
            return F.conv2d(t, window, padding=padding, groups=channels)
        t = F.conv2d(t, row, padding=(0, padding), groups=channels)
        return F.conv2d(t, column, padding=(padding, 0), groups=channels)

    mu_x, mu_y = filt(x), filt(y)
    sigma_x = filt(x * x) - mu_x**2
    sigma_y = filt(y * y) - mu_y**2
    sigma_xy = filt(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))


def ssim(pred: torch.Tensor, target: torch.Tensor, convention: str = "rgb", separable: bool = True) -> torch.Tensor:
    """Per-image SSIM (B,), Gaussian window 11 / sigma 1.5, in the given convention."""
    pred, target, peak = prepare(pred, target, convention)
    padding = WINDOW // 2 if convention == "rgb" else 0
    return ssim_map(pred, target, peak, padding, separable).flatten(1).mean(dim=1)


def image_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """PSNR and SSIM in both conventions: {"psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"}, each (B,)."""
    return {
        f"{name}_{conv}": fn(pred, target, conv)
        for conv in CONVENTIONS
        for name, fn in (("psnr", psnr), ("ssim", ssim))
    }


def uint8_metrics(pred_rgb: np.ndarray, target_rgb: np.ndarray, device: torch.device | str = "cpu") -> dict[str, float]:
    """Both conventions for one pair of RGB uint8 (H, W, 3) images, computed in float64 on `device`."""

    def as_tensor(image: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(image)).to(device).permute(2, 0, 1)[None].double() / 255.0

    values = image_metrics(as_tensor(pred_rgb), as_tensor(target_rgb))
    return {key: float(value[0]) for key, value in values.items()}
