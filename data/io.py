"""Reading and writing images with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(ValueError):
    """An image file is missing, empty, or cannot be decoded."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (not recursive), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3); grey images are repeated to three channels, alpha is dropped."""
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    if data is None:
        raise ImageReadError(f"image not found: {path}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot decode image {path} (expected a PNG/JPEG/BMP/TIFF/WebP file, {data.size} bytes)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 (H, W, 3) image; the format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    encoded.tofile(path)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float (3, H, W) in [0, 1] -> RGB uint8 (H, W, 3), clamped and rounded."""
    return image.detach().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()
