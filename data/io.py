"""Reading and writing images with errors that name the file."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from derain.cli import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class ImageReadError(InputError, ValueError):
    """An image file is missing, empty, or cannot be decoded."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder (not recursive), sorted by name."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


@dataclass(frozen=True)
class Picture:
    """An image file as it is: RGB float32 (H, W, 3) in [0, 1] plus what a writer needs to give it back unchanged.

    Attributes:
        rgb: the colour channels (a grey image repeated to three), float32 in [0, 1].
        depth: 8 or 16 bits per channel in the file.
        grey: the file has one colour channel.
        alpha: the file's alpha channel (H, W) in its own dtype, or None.
    """

    rgb: np.ndarray
    depth: int
    grey: bool
    alpha: np.ndarray | None

    @property
    def mode(self) -> str:
        return f"{'grey' if self.grey else 'RGB'}{'+alpha' if self.alpha is not None else ''} {self.depth}-bit"

    def rgb8(self) -> np.ndarray:
        """RGB uint8 (H, W, 3) (16-bit rounded to 8, alpha left out): what the metrics take."""
        return np.clip(np.rint(self.rgb * 255.0), 0, 255).astype(np.uint8)


def _decode(path: Path, flags: int) -> np.ndarray:
    if not path.is_file():
        raise ImageReadError(f"image not found: {path}" if not path.exists() else f"not a file: {path}")
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"empty file (0 bytes): {path}")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # our error below names the file instead
    try:
        image = cv2.imdecode(data, flags)
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None:
        raise ImageReadError(f"cannot decode image {path} (expected a PNG/JPEG/BMP/TIFF/WebP file, {data.size} bytes)")
    return image


def read_picture(path: str | Path) -> Picture:
    """Read an image file as it is (grey, RGB, with or without alpha, 8 or 16 bits).

    Raises:
        ImageReadError: missing, empty or undecodable file; a depth other than 8/16 bits (float HDR, 32-bit).
    """
    path = Path(path)
    return _as_picture(_decode(path, cv2.IMREAD_UNCHANGED), path)


def _as_picture(image: np.ndarray, path: Path) -> Picture:
    """A decoded image (OpenCV's channel order and dtype) as a `Picture`."""
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"{path}: {image.dtype} pixels are not supported (8- or 16-bit images only; convert "
                             "HDR / float images first)")  # fmt: skip
    depth = 8 if image.dtype == np.uint8 else 16
    alpha = None
    if image.ndim == 2:
        grey, colour = True, cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 2:  # grey + alpha
        grey, alpha, colour = True, image[..., 1].copy(), cv2.cvtColor(image[..., 0], cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 3:
        grey, colour = False, cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 4:
        grey, alpha, colour = False, image[..., 3].copy(), cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
    else:
        raise ImageReadError(f"{path}: {image.shape[2]} channels are not supported (grey, RGB or RGBA)")
    scale = 255.0 if depth == 8 else 65535.0
    return Picture(colour.astype(np.float32) / np.float32(scale), depth, grey, alpha)


def write_picture(path: str | Path, rgb: np.ndarray, like: Picture) -> None:
    """Write RGB float (H, W, 3) in [0, 1] in the mode of `like` (grey stays grey, alpha is put back, 16-bit stays
    16-bit), atomically; a format that cannot hold that mode is an error, never a silent change."""
    from derain.outputs import atomic_write_bytes

    path = Path(path)
    if like.depth == 16 and path.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise ImageReadError(f"{path.name}: a {path.suffix} file cannot hold 16-bit pixels")
    if like.alpha is not None and path.suffix.lower() not in (".png", ".tif", ".tiff", ".webp"):
        raise ImageReadError(f"{path.name}: a {path.suffix} file cannot hold an alpha channel")
    scale, dtype = (255.0, np.uint8) if like.depth == 8 else (65535.0, np.uint16)
    pixels = np.clip(np.rint(np.asarray(rgb, np.float64) * scale), 0, scale).astype(dtype)
    image = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY) if like.grey else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    if like.alpha is not None:  # OpenCV encodes 1, 3 or 4 channels: grey + alpha goes out as BGRA
        image = np.dstack([cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if like.grey else image, like.alpha])
    ok, encoded = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    atomic_write_bytes(path, encoded.tobytes())


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file (decoded once); ImageReadError names a missing, empty or undecodable file."""
    return _decode(Path(path), cv2.IMREAD_UNCHANGED).shape[:2]


_CONVERTED: set[tuple[str, str]] = set()


def read_image(path: str | Path) -> np.ndarray:
    """Read an image as RGB uint8 (H, W, 3) for training and scoring. A grey image is repeated to three channels,
    alpha is left out and 16-bit is rounded to 8 bits; each such change is logged once per folder and mode.
    (`read_picture` keeps the file's mode.)"""
    path = Path(path)
    image = _decode(path, cv2.IMREAD_UNCHANGED)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    picture = _as_picture(image, path)
    key = (str(path.parent), picture.mode)
    if key not in _CONVERTED:
        _CONVERTED.add(key)
        log.warning("%s: %s images are read as RGB 8-bit (e.g. %s)", path.parent, picture.mode, path.name)
    return picture.rgb8()


def write_image(path: str | Path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 (H, W, 3) image atomically; the format follows the suffix."""
    from derain.outputs import atomic_write_bytes

    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix or ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"cannot encode image for {path}")
    atomic_write_bytes(path, encoded.tobytes())


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """RGB uint8 (H, W, 3) -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Float (3, H, W) in [0, 1] -> RGB uint8 (H, W, 3), clamped and rounded."""
    return image.detach().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()
