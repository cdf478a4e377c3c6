"""Data v2 scenes: unlimited procedural training scenes, and a fixed natural-photo test set.

Training scenes (`SceneSampler`) mix two sources, by `photo_fraction`:

- dead-leaves images (`dead_leaves`): occluding shapes (disks, ellipses, rectangles) with power-law radii
  (p(r) ~ r^-3, scale invariant), colours drawn from the training photos' pixels, and textures (flat, linear
  gradients, 1/f noise), composed front to back until the frame is covered, then defocused at random. Such images
  share natural images' edge, spectrum and occlusion statistics (Achddou, Gousseau, Ladjal 2021; Baradad et al.
  2021), so a restoration network trained on them generalizes to photos;
- random crops of the packaged training photos (`photos.TRAIN_PHOTOS`).

The test set (`paired_crops`) is cut from the test photos (`photos.TEST_PHOTOS`), from which no training image ever
comes: a grid of non-overlapping `TEST_CROP`-pixel crops of each photo (126 at 80 pixels), the same clean crops
for every domain. Each crop gets its own rain draw, rendered at the public sets' scale over the crop and a margin
of the photo around it, so streaks cross crop borders as they do in a real frame.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from derain.data.io import to_tensor, to_uint8
from derain.data.photos import TEST_PHOTOS, TRAIN_PHOTOS, photo, random_background
from derain.data.rain import domain_seed, render_rain

TEST_CROP = 80  # a multiple of 16: every registered network takes it without padding
TEST_MARGIN = 40  # photo around each test crop that its rain is rendered over


# ----------------------------------------------------------------------------------------------- test set


@dataclass(frozen=True)
class GridCrop:
    scene: str  # source photo
    top: int
    left: int


def grid_crops(crop: int = TEST_CROP) -> list[GridCrop]:
    """The non-overlapping grid of each test photo (centred), in a fixed order."""
    crops = []
    for name in TEST_PHOTOS:
        height, width = photo(name).shape[:2]
        rows, cols = height // crop, width // crop
        top0, left0 = (height - rows * crop) // 2, (width - cols * crop) // 2
        crops += [GridCrop(name, top0 + r * crop, left0 + c * crop) for r in range(rows) for c in range(cols)]
    return crops


def paired_crops(
    domain: str | None, crop: int = TEST_CROP, seed: int = 0, margin: int = TEST_MARGIN
) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(clean crops, rainy crops, scene of each crop) of the v2 test set; `domain=None`: the rainy crops are the
    clean ones (the dry-weather column). uint8 RGB.

    Every crop gets its own rain draw (density, angle, brightness, streak type...), rendered over the crop and a
    `margin` of the photo around it (clipped at the photo's border) and then cut, so streaks enter and leave the
    crop as they do in a full frame, and the crops sample the domain's whole parameter range. Rendered once per
    process and argument set (the arrays are shared and read-only; copy one to change it).
    """
    clean, rainy, scenes = _paired_crops(domain, crop, seed, margin)
    return list(clean), list(rainy), list(scenes)


@functools.lru_cache(maxsize=16)
def _paired_crops(domain: str | None, crop: int, seed: int, margin: int) -> tuple[tuple, tuple, tuple]:
    clean, rainy = [], []
    layout = grid_crops(crop)
    for index, item in enumerate(layout):
        full = photo(item.scene)
        clean.append(np.ascontiguousarray(full[item.top : item.top + crop, item.left : item.left + crop]))
        if domain is None:
            rainy.append(clean[-1])
            continue
        top, left = max(0, item.top - margin), max(0, item.left - margin)
        bottom = min(full.shape[0], item.top + crop + margin)
        right = min(full.shape[1], item.left + crop + margin)
        generator = torch.Generator().manual_seed(domain_seed(seed, "v2-test", domain, item.scene, index))
        window = to_tensor(np.array(full[top:bottom, left:right]))[None]
        wet = to_uint8(render_rain(window, domain, generator, scale=1.0)[0])
        y, x = item.top - top, item.left - left
        rainy.append(np.ascontiguousarray(wet[y : y + crop, x : x + crop]))
    for image in (*clean, *rainy):
        image.flags.writeable = False
    return tuple(clean), tuple(rainy), tuple(item.scene for item in layout)


# ----------------------------------------------------------------------------------------------- dead leaves


@functools.cache
def _palette() -> np.ndarray:
    """(N, 3) uint8 colours: half pixels of the colour training photos, half random colours with natural-looking
    saturation and value (most of the training photos are grey)."""
    rng = np.random.default_rng(0)
    colour = [photo(name).reshape(-1, 3) for name in TRAIN_PHOTOS if not _is_grey(photo(name))]
    pixels = [p[rng.integers(0, len(p), 20000)] for p in colour]
    count = max(20000, sum(len(p) for p in pixels))
    hsv = np.stack(
        [rng.integers(0, 180, count), 255 * rng.beta(1.5, 2.5, count), 255 * rng.beta(2.0, 2.0, count)], axis=1
    ).astype(np.uint8)
    pixels.append(cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0])
    return np.concatenate(pixels)


def _is_grey(image: np.ndarray) -> bool:
    return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))


@functools.cache
def _noise_fields(size: int = 256, count: int = 6) -> np.ndarray:
    """(count, size, size) zero-mean unit-std noise with amplitude spectra 1/f^beta, beta 0.8-1.5 (natural
    textures sit near 1)."""
    rng = np.random.default_rng(1)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    radius = np.hypot(fy, fx)
    radius[0, 0] = 1.0
    fields = []
    for beta in np.linspace(0.8, 1.5, count):
        spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / radius**beta
        spectrum[0, 0] = 0
        field = np.fft.ifft2(spectrum).real
        fields.append((field - field.mean()) / field.std())
    return np.stack(fields).astype(np.float32)


def dead_leaves(size: int, rng: np.random.Generator, min_radius: float = 2.0, max_leaves: int = 4000) -> np.ndarray:
    """One (size, size, 3) uint8 RGB dead-leaves image."""
    palette, noise = _palette(), _noise_fields()
    max_radius = size / 2.5
    image = np.zeros((size, size, 3), np.float32)
    covered = np.zeros((size, size), np.float32)
    for _ in range(max_leaves):
        u = rng.random()
        radius = (min_radius**-2 - u * (min_radius**-2 - max_radius**-2)) ** -0.5  # p(r) ~ r^-3
        cy, cx = rng.uniform(-radius, size + radius, 2)
        y0, y1 = max(0, int(cy - radius - 1)), min(size, int(cy + radius + 2))
        x0, x1 = max(0, int(cx - radius - 1)), min(size, int(cx + radius + 2))
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dy, dx = yy - cy, xx - cx
        shape = rng.random()
        if shape < 0.5:  # disk
            edge = np.hypot(dy, dx) - radius
        else:  # ellipse or rectangle, rotated
            angle = rng.uniform(0, np.pi)
            ca, sa = np.cos(angle), np.sin(angle)
            u_, v_ = dx * ca + dy * sa, -dx * sa + dy * ca
            aspect = rng.uniform(0.3, 1.0)
            if shape < 0.75:
                edge = (np.hypot(u_, v_ / aspect) - radius) * aspect
            else:
                edge = np.maximum(np.abs(u_) - radius, np.abs(v_) - radius * aspect)
        alpha = np.clip(0.5 - edge, 0.0, 1.0)  # one-pixel anti-aliased edge
        free = alpha * (1.0 - covered[y0:y1, x0:x1])
        if not free.any():
            continue
        colour = palette[rng.integers(len(palette))].astype(np.float32) / 255
        texture = rng.random()
        if texture < 0.3:
            shade = np.ones_like(alpha)
        elif texture < 0.6:  # a linear gradient across the leaf
            gy, gx = rng.normal(size=2) * rng.uniform(0, 0.6) / max(radius, 1)
            shade = 1 + gy * dy + gx * dx
        else:  # 1/f noise at a random offset and strength
            field = noise[rng.integers(len(noise))]
            oy, ox = rng.integers(0, field.shape[0] - (y1 - y0) + 1), rng.integers(0, field.shape[1] - (x1 - x0) + 1)
            shade = 1 + rng.uniform(0.05, 0.4) * field[oy : oy + y1 - y0, ox : ox + x1 - x0]
        image[y0:y1, x0:x1] += free[..., None] * np.clip(colour * shade[..., None], 0, 1)
        covered[y0:y1, x0:x1] += free
        if covered.min() > 0.995:
            break
    image += (1 - covered)[..., None] * image.sum((0, 1)) / max(covered.sum(), 1)  # fill any last holes
    if rng.random() < 0.3:  # depth of field
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.5))
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------- training


class SceneSampler:
    """Clean training patches: dead-leaves images (a pool rendered on first use) mixed with training-photo crops.

    Args:
        photo_fraction: share of patches cut from the training photos; the rest are dead-leaves crops.
        pool: dead-leaves images rendered once (each is cropped, flipped and rotated afresh every draw).
        pool_size: side of the pooled dead-leaves images (patches are crops of them).
    """

    def __init__(self, photo_fraction: float = 0.5, pool: int = 600, pool_size: int = 192, seed: int = 0) -> None:
        if not 0.0 <= photo_fraction <= 1.0:
            raise ValueError(f"photo_fraction must be in [0, 1], got {photo_fraction}")
        self.photo_fraction, self.pool_count, self.pool_size, self.seed = photo_fraction, pool, pool_size, seed
        self._pool: list[np.ndarray] | None = None

    @property
    def pool(self) -> list[np.ndarray]:
        if self._pool is None:
            rng = np.random.default_rng([self.seed, 7])
            count = self.pool_count if self.photo_fraction < 1.0 else 0
            self._pool = [dead_leaves(self.pool_size, rng) for _ in range(count)]
        return self._pool

    def sample(self, size: int, rng: np.random.Generator, width: int | None = None) -> tuple[np.ndarray, str]:
        """One (size, width or size, 3) uint8 RGB patch and its source ("dead_leaves" or the photo's name)."""
        height, width = size, width or size
        if rng.random() < self.photo_fraction:
            name = TRAIN_PHOTOS[int(rng.integers(len(TRAIN_PHOTOS)))]
            return random_background(photo(name), height, width, rng), name
        source = self.pool[int(rng.integers(len(self.pool)))]
        source = np.rot90(source, int(rng.integers(4)))
        if max(height, width) > source.shape[0]:
            side = max(height, width)
            source = cv2.resize(np.ascontiguousarray(source), (side, side), interpolation=cv2.INTER_CUBIC)
        top = int(rng.integers(0, source.shape[0] - height + 1))
        left = int(rng.integers(0, source.shape[1] - width + 1))
        patch = source[top : top + height, left : left + width]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        return np.ascontiguousarray(patch), "dead_leaves"
