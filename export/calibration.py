"""Frames for calibration (AutoCast magnitudes, INT8/FP8 ranges): rendered rainy frames or a user's folder."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from derain.data.io import ImageReadError, image_size, list_images, read_image, to_tensor, to_uint8
from derain.data.pairing import image_folder
from derain.data.photos import TRAIN_PHOTOS, photo, random_background
from derain.data.rain import render_rain
from derain.frames import to_network

log = logging.getLogger(__name__)

# Rain of every built-in character, light to heavy, so ranges cover highlights, haze and dense streaks.
CALIBRATION_DOMAINS = ("rain100H", "rain100L", "rain1400", "rain1200_medium", "rain1200_heavy", "real_like")


def synthetic_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """`count` rainy RGB uint8 frames (N, H, W, 3) rendered over the colour training photos (a camera's frames
    are in colour), cycling the domains; streaks scale with the frame (as in a video of that size)."""
    names = [name for name in TRAIN_PHOTOS if photo(name).std(axis=2).max() > 0]
    rng = np.random.default_rng(seed)
    frames = []
    generator = torch.Generator().manual_seed(seed)
    for index in range(count):
        image = random_background(photo(names[index % len(names)]), height, width, rng)
        domain = CALIBRATION_DOMAINS[index % len(CALIBRATION_DOMAINS)]
        frames.append(to_uint8(render_rain(to_tensor(image)[None], domain, generator, scale=None)[0]))
    return np.stack(frames)


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop to the target aspect, then resize to (height, width)."""
    src_h, src_w = image.shape[:2]
    scale = min(src_h / height, src_w / width)
    crop_h, crop_w = int(round(height * scale)), int(round(width * scale))
    top, left = (src_h - crop_h) // 2, (src_w - crop_w) // 2
    crop = image[top : top + crop_h, left : left + crop_w]
    interpolation = cv2.INTER_AREA if crop_h > height else cv2.INTER_CUBIC
    return cv2.resize(crop, (width, height), interpolation=interpolation)


def folder_frames(folder: str | Path, count: int, height: int, width: int, skipped: list[str] | None = None
                  ) -> np.ndarray:  # fmt: skip
    """Up to `count` RGB uint8 frames (N, H, W, 3) from the images of `folder` (undecodable files are skipped and
    their names appended to `skipped`)."""
    folder = Path(folder)
    paths = image_folder(folder, "calibration folder")
    frames = []
    skipped = skipped if skipped is not None else []
    for path in paths:
        if len(frames) == count:
            break
        try:
            frames.append(_fit(read_image(path), height, width))
        except ImageReadError as error:
            skipped.append(path.name)
            log.warning("calibration: skipping %s", error)
    if not frames:
        raise ValueError(f"no readable image in calibration folder {folder} (skipped {', '.join(skipped)})")
    if len(frames) < count:
        log.warning("calibration: %s has %d usable images, fewer than the %d asked for", folder, len(frames), count)
    return np.stack(frames)


def calibration_frames(source: str | Path, count: int, height: int, width: int, seed: int = 0,
                       skipped: list[str] | None = None) -> np.ndarray:  # fmt: skip
    """RGB uint8 frames (N, H, W, 3) from `source`: "synthetic" (built-in rain) or a folder of images (the names of
    unreadable files are appended to `skipped`)."""
    if str(source) == "synthetic":
        return synthetic_frames(count, height, width, seed)
    return folder_frames(source, count, height, width, skipped)


def calibration_folder_problems(folder: str | Path) -> list[str]:
    """Why a calibration folder cannot be used ([] if it can); unreadable files in it are only logged (skipped)."""
    folder = Path(folder)
    if not folder.exists():
        return [f"--calib {folder} does not exist (give a folder of camera frames, or 'synthetic')"]
    if not folder.is_dir():
        return [f"--calib {folder} is a file, a folder of images is needed"]
    paths = list_images(folder)
    if not paths:
        return [f"--calib {folder} holds no images (PNG/JPEG/BMP/TIFF/WebP)"]
    for path in paths:
        try:
            image_size(path)
            return []
        except ImageReadError:
            continue
    return [f"--calib {folder}: none of its {len(paths)} image(s) can be read"]


def graph_input(frames_rgb: np.ndarray, io: str) -> np.ndarray:
    """RGB uint8 frames (N, H, W, 3) -> what the exported graph takes: uint8 BGR NHWC, or float RGB NCHW in [0, 1]
    by the frame contract (`derain.frames.to_network`)."""
    if frames_rgb.ndim != 4 or frames_rgb.shape[-1] != 3 or frames_rgb.dtype != np.uint8:
        raise ValueError(f"expected RGB uint8 frames (N, H, W, 3), found {frames_rgb.dtype} {frames_rgb.shape}")
    bgr = np.ascontiguousarray(frames_rgb[..., ::-1])
    return bgr if io == "uint8" else to_network(bgr)
