"""Random crops and the 8 flip/rotation augmentations, applied identically to every image of a sample."""

from __future__ import annotations

import numpy as np


def reflect_pad_to(image: np.ndarray, size: int) -> np.ndarray:
    """Reflect-pad an (H, W, C) image on the bottom/right so both sides are at least `size`."""
    pad_h = max(0, size - image.shape[0])
    pad_w = max(0, size - image.shape[1])
    if not pad_h and not pad_w:
        return image
    mode = "reflect" if pad_h < image.shape[0] and pad_w < image.shape[1] else "symmetric"
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def random_crop(images: list[np.ndarray], size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same `size` x `size` window of every image (small images are reflect-padded first)."""
    images = [reflect_pad_to(image, size) for image in images]
    height, width = images[0].shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return [image[top : top + size, left : left + size] for image in images]


def dihedral(image: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 flips/rotations of the square's symmetry group (mode 0 is the identity)."""
    if not 0 <= mode < 8:
        raise ValueError(f"augmentation mode must be in [0, 8), found {mode}")
    out = np.rot90(image, k=mode % 4)
    if mode >= 4:
        out = np.flipud(out)
    return np.ascontiguousarray(out)


def random_dihedral(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    mode = int(rng.integers(0, 8))
    return [dihedral(image, mode) for image in images]
