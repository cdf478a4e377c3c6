"""Image quality: full-reference PSNR/SSIM (RGB and MATLAB Y conventions); no-reference scorers come later."""

from __future__ import annotations

from derain.quality.metrics import CONVENTIONS, image_metrics, psnr, rgb_to_y, ssim, uint8_metrics

__all__ = ["CONVENTIONS", "image_metrics", "psnr", "rgb_to_y", "ssim", "uint8_metrics"]
