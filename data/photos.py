"""Clean backgrounds from the photographs that ship with scikit-image.

A fixed split of source photos keeps test backgrounds out of training (data v2): the four colour photos of
natural scenes `coffee`, `rocket`, `chelsea` and `astronaut` are test-only; training uses the motorcycle stereo
pair and the natural grey photos (`camera`, `brick`, `grass`, `gravel`, as RGB), mixed with procedural
dead-leaves scenes (`data/scenes.py`). Non-natural images (`hubble_deep_field`, `ihc`, `retina`, charts) are
left out. Each photo is expanded into many distinct backgrounds by random crops (35-100 % of the short side),
rescaling and flips, deterministic by seed.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from derain.data.io import read_image

# Photographs bundled in skimage/data (no download).
TRAIN_PHOTOS = (
    "motorcycle_left.png",
    "motorcycle_right.png",
    "camera.png",
    "brick.png",
    "grass.png",
    "gravel.png",
)
TEST_PHOTOS = ("coffee.png", "rocket.jpg", "chelsea.png", "astronaut.png")
# Training photos of whole scenes (the others are texture close-ups): what a natural-image model such as NIQE's
# should be fitted on (fitted on textures or dead-leaves scenes, NIQE prefers rainy photos to clean ones).
SCENE_PHOTOS = ("motorcycle_left.png", "motorcycle_right.png", "camera.png")
SPLITS = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS}


def photo_folder() -> Path:
    import skimage  # imported here: only the built-in data needs it

    return Path(skimage.__file__).resolve().parent / "data"


@functools.cache
def photo(name: str) -> np.ndarray:
    """A packaged photo as read-only RGB uint8 (grey photos repeated over the three channels)."""
    image = read_image(photo_folder() / name)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3])
    image.setflags(write=False)
    return image


_load = photo


def clean_photos(split: str) -> list[np.ndarray]:
    """The source photos of a split as RGB uint8 arrays."""
    if split not in SPLITS:
        raise ValueError(f"unknown photo split {split!r}; known: {', '.join(SPLITS)}")
    return [_load(name) for name in SPLITS[split]]


def random_background(photo: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of `photo` (aspect of the output, 35-100 % of what fits), resized to (height, width), flipped."""
    src_h, src_w = photo.shape[:2]
    fit = min(src_h / height, src_w / width)  # largest scale at which the output aspect fits the photo
    scale = fit * rng.uniform(0.35, 1.0)
    crop_h = max(8, min(src_h, int(round(height * scale))))
    crop_w = max(8, min(src_w, int(round(width * scale))))
    top = int(rng.integers(0, src_h - crop_h + 1))
    left = int(rng.integers(0, src_w - crop_w + 1))
    crop = photo[top : top + crop_h, left : left + crop_w]
    interpolation = cv2.INTER_AREA if crop_h > height else cv2.INTER_CUBIC
    out = cv2.resize(crop, (width, height), interpolation=interpolation)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def background_sources(split: str, count: int) -> list[str]:
    """The source photo of each image `backgrounds(split, count, ...)` yields, in order (it cycles the photos)."""
    if split not in SPLITS:
        raise ValueError(f"unknown photo split {split!r}; known: {', '.join(SPLITS)}")
    names = SPLITS[split]
    return [names[index % len(names)] for index in range(count)]


def backgrounds(split: str, count: int, height: int, width: int, seed: int) -> Iterator[np.ndarray]:
    """`count` distinct backgrounds from a split's photos, cycling through the photos, deterministic by seed."""
    rng = np.random.default_rng(seed)
    for name in background_sources(split, count):
        yield random_background(_load(name), height, width, rng)
