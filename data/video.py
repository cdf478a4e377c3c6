"""A synthetic rainy video: a camera panning over a photo through temporally coherent falling rain.

Rain is a few depth layers of streak sheets that tile on a torus; each frame shifts every sheet along its fall
direction by its speed (near layers fall faster and are longer and blurrier), so a drop moves continuously from
frame to frame. The clean frame is available beside every rainy frame, for measuring.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from derain.data.photos import clean_photos
from derain.data.rain import REFERENCE_SIDE, StreakLayer, get_domain, rotate_onto, streak_canvas

# Far drizzle, mid streaks, near defocused streaks: speeds in pixels per frame at a 320-pixel short side.
VIDEO_LAYERS = (
    (StreakLayer(density=(0.004, 0.004), length=(8, 8), width=(0.4, 0.4), brightness=(0.18, 0.18)), 9.0),
    (StreakLayer(density=(0.0012, 0.0012), length=(22, 22), width=(0.8, 0.8), brightness=(0.35, 0.35)), 16.0),
    (
        StreakLayer(
            density=(0.00015, 0.00015), length=(60, 60), width=(2.0, 2.0), brightness=(0.3, 0.3), blur=(2.5, 2.5)
        ),
        30.0,
    ),
)


def domain_layers(name: str, rng: np.random.Generator) -> tuple[list[tuple[StreakLayer, float]], float, float]:
    """A rain domain as video: its streak layers with fall speeds (longer streaks fall faster), an angle and a
    haze strength drawn once for the whole clip."""
    domain = get_domain(name)
    layers = list(domain.layers)
    if domain.streak_types:  # Rain1400-like: one streak type per clip
        angle, length = domain.streak_types[int(rng.integers(len(domain.streak_types)))]
        layers = [StreakLayer(**{**layer.__dict__, "length": (length, length)}) for layer in layers]
    else:
        angle = float(rng.uniform(*domain.angle))
    speeds = [6.0 + 0.5 * (layer.length[0] + layer.length[1]) / 2 for layer in layers]
    haze = float(rng.uniform(*domain.haze)) if domain.haze[1] > 0 else 0.0
    return list(zip(layers, speeds)), float(angle), haze


@dataclass(frozen=True)
class VideoFrame:
    index: int
    rainy: np.ndarray  # uint8 (H, W, 3) BGR, as a camera delivers it
    clean: np.ndarray  # uint8 (H, W, 3) BGR


class SyntheticRainVideo:
    """Iterable rainy video of any resolution and length, deterministic by seed.

    Args:
        width, height: frame size.
        frames: number of frames (None: endless).
        fps: nominal frame rate (reported, not enforced).
        angle: fall direction in degrees from vertical.
        split: which photos to pan over ("test" keeps scenes unseen in training).
        domain: a registered rain domain whose streaks (and haze) the clip shows instead of the default
            three-depth rain; its angle and haze are drawn once per clip from the seed.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 360,
        frames: int | None = 90,
        fps: float = 30.0,
        angle: float = 12.0,
        seed: int = 0,
        split: str = "test",
        haze: float = 0.08,
        domain: str | None = None,
    ) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"frame size must be at least 16x16, found {width}x{height}")
        self.width, self.height, self.frames, self.fps = width, height, frames, fps
        rng = np.random.default_rng(seed)
        layers = list(VIDEO_LAYERS)
        if domain is not None:
            layers, angle, haze = domain_layers(domain, np.random.default_rng([seed, 1]))
        self.angle, self.haze = angle, haze
        photos = clean_photos(split)
        photo = photos[int(rng.integers(len(photos)))]
        # Panorama: the photo scaled so its height is 1.2 frames, at least 1.6 frames wide.
        scale = max(1.2 * height / photo.shape[0], 1.6 * width / photo.shape[1])
        size = (int(math.ceil(photo.shape[1] * scale)), int(math.ceil(photo.shape[0] * scale)))
        self.panorama = cv2.cvtColor(cv2.resize(photo, size, interpolation=cv2.INTER_CUBIC), cv2.COLOR_RGB2BGR)
        self.pan_period = int(rng.integers(120, 240))
        generator = torch.Generator().manual_seed(seed)
        unit = min(width, height) / REFERENCE_SIDE
        self.side = int(math.ceil(math.hypot(width, height))) + 4
        self.sheets, self.speeds, self.offsets = [], [], []
        for layer, speed in layers:
            sheet = streak_canvas(1, self.side, layer, unit, generator, torch.device("cpu"), circular=True)
            self.sheets.append(sheet)
            self.speeds.append(speed * unit)
            self.offsets.append(layer.angle_offset)

    def __len__(self) -> int:
        if self.frames is None:
            raise TypeError("endless video has no length")
        return self.frames

    def clean_frame(self, index: int) -> np.ndarray:
        """The background at frame `index`: a window panning left-right and slightly down."""
        span_x = self.panorama.shape[1] - self.width
        span_y = self.panorama.shape[0] - self.height
        phase = (index % (2 * self.pan_period)) / self.pan_period
        phase = phase if phase <= 1 else 2 - phase  # back and forth
        left = int(round(span_x * phase))
        top = int(round(span_y * 0.5 * (1 + math.sin(2 * math.pi * index / (3 * self.pan_period)))))
        return self.panorama[top : top + self.height, left : left + self.width]

    def rain_frame(self, index: int) -> torch.Tensor:
        """(1, 1, H, W) rain at frame `index`: each sheet shifted down by speed x index, then rotated (sheets of
        one direction together; a domain with several directions, like rain100H, rotates each on its own)."""
        by_direction: dict[float, torch.Tensor] = {}
        for sheet, speed, offset in zip(self.sheets, self.speeds, self.offsets, strict=True):
            moved = torch.roll(sheet, shifts=int(round(speed * index)) % self.side, dims=2)
            by_direction[offset] = by_direction.get(offset, 0) + moved
        return sum(
            rotate_onto(total, torch.tensor([self.angle + offset]), self.height, self.width)
            for offset, total in by_direction.items()
        )

    def frame(self, index: int) -> VideoFrame:
        clean = self.clean_frame(index)
        background = torch.from_numpy(np.ascontiguousarray(clean)).permute(2, 0, 1)[None].float() / 255.0
        rain = self.rain_frame(index)
        rainy = (background * (1 - self.haze) + 0.85 * self.haze + rain).clamp(0, 1)
        rainy_u8 = rainy[0].mul(255).round().byte().permute(1, 2, 0).numpy()
        return VideoFrame(index, np.ascontiguousarray(rainy_u8), np.ascontiguousarray(clean))

    def __iter__(self) -> Iterator[VideoFrame]:
        index = 0
        while self.frames is None or index < self.frames:
            yield self.frame(index)
            index += 1
