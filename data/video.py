"""A synthetic rainy video: a camera panning over a photo through temporally coherent falling rain.

Rain is a few depth layers of streak sheets that tile on a torus; each frame shifts every sheet along its fall
direction by its speed (near layers fall faster and are longer and blurrier), so a drop moves continuously from
frame to frame. The clean frame is available beside every rainy frame, for measuring.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from derain.data.photos import clean_photos, random_background
from derain.data.rain import (
    AIRLIGHT,
    REFERENCE_SIDE,
    StreakLayer,
    domain_seed,
    get_domain,
    rotate_onto,
    streak_canvas,
)

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


# ----------------------------------------------------------------------------------------------- video clips
# Rendered rainy clips for training and scoring a video de-rainer (data v2's scenes and rain domains, in time): a
# camera that pans, zooms or moves forward over a scene, shots separated by cuts, rain that falls coherently from
# frame to frame and may stop or start within a shot. Deterministic by seed.

MOTIONS = ("static", "pan", "zoom", "forward")
CANVAS = 1.6  # a shot's scene is this many frames wide and high: the camera moves over it
RAMP = 6  # frames over which rain stops or starts


@dataclass(frozen=True)
class ClipConfig:
    """How clips are drawn.

    Attributes:
        frames, height, width: clip length and frame size.
        shots: (min, max) shots per clip; a cut separates two shots (a new scene, camera path and rain draw).
        dry_prob: probability that a shot's rain stops, starts, or is absent (dry weather) within it.
        motions: the camera motions a shot draws from (`MOTIONS`); with `in_order`, shot i moves as motions[i].
        scale: (min, max) streak scale (1: the public sets' pixels at a 320-pixel short side), one draw per clip.
        photo_fraction: for the training split, the share of shots over training photos (else dead-leaves scenes).
    """

    frames: int = 32
    height: int = 192
    width: int = 320
    shots: tuple[int, int] = (1, 2)
    dry_prob: float = 0.2
    motions: tuple[str, ...] = MOTIONS
    scale: tuple[float, float] = (1.0, 1.0)
    photo_fraction: float = 0.5
    in_order: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.motions) - set(MOTIONS))
        if unknown or not self.motions:
            raise ValueError(f"unknown camera motions {unknown}; known: {', '.join(MOTIONS)}")
        if self.frames < 1 or self.height < 16 or self.width < 16:
            raise ValueError(f"a clip needs >= 1 frame of at least 16x16, got {self.frames} of "
                             f"{self.width}x{self.height}")  # fmt: skip
        if not 1 <= self.shots[0] <= self.shots[1]:
            raise ValueError(f"shots must be (min, max) with 1 <= min <= max, got {self.shots}")


@dataclass(frozen=True)
class Clip:
    """A rendered clip: uint8 RGB frames (T, H, W, 3), rainy and clean; where shots start (`cuts`, frame 0 included),
    each frame's rain amount (0 dry .. 1 full) and each shot's camera motion; `flow[t]` maps frame t's pixel grid
    to frame t-1's (exact, from the camera path; NaN at a cut and at frame 0), (T, H, W, 2) in pixels; `motion[t]`
    is the same map as a 2x3 affine matrix of pixel coordinates (T, 2, 3), NaN where `flow` is."""

    rainy: np.ndarray
    clean: np.ndarray
    cuts: tuple[int, ...]
    rain: np.ndarray
    motions: tuple[str, ...]
    domain: str
    flow: np.ndarray
    motion: np.ndarray


def _camera_path(motion: str, length: int, height: int, width: int, canvas: tuple[int, int],
                 rng: np.random.Generator) -> np.ndarray:  # fmt: skip
    """(length, 3) views (centre x, centre y, k: canvas pixels per frame pixel) of one shot, inside the canvas."""
    canvas_h, canvas_w = canvas
    t = np.arange(length, dtype=np.float64)
    if motion == "zoom":
        ends = rng.uniform(0.9, 1.5, 2)
        k = ends[0] * (ends[1] / ends[0]) ** (t / max(1, length - 1))
        centre = np.array([canvas_w / 2, canvas_h / 2]) + rng.uniform(-0.1, 0.1, 2) * (canvas_w, canvas_h)
        cx, cy = np.full(length, centre[0]), np.full(length, centre[1])
    elif motion == "forward":  # towards a vanishing point a little above the centre, accelerating, a slight bob
        k = 1.5 * np.exp(-rng.uniform(0.006, 0.02) * t * (1 + 0.01 * t))
        cx = np.full(length, canvas_w / 2 + rng.uniform(-0.08, 0.08) * canvas_w)
        cy = canvas_h * (0.45 + rng.uniform(-0.05, 0.05)) + 0.6 * np.sin(2 * math.pi * t / rng.uniform(8, 16))
    else:
        k = np.full(length, rng.uniform(1.0, 1.4))
        speed = rng.uniform(0.5, 3.0) if motion == "pan" else 0.0  # frame pixels per frame
        direction = rng.uniform(0, 2 * math.pi)
        cx = canvas_w / 2 + speed * k * (t - length / 2) * math.cos(direction)
        cy = canvas_h / 2 + 0.5 * speed * k * (t - length / 2) * math.sin(direction)
        cx, cy = cx + rng.uniform(-0.1, 0.1) * canvas_w, cy + rng.uniform(-0.1, 0.1) * canvas_h
    k = np.minimum(k, min(canvas_w / width, canvas_h / height) * 0.999)
    cx = np.clip(cx, k * width / 2, canvas_w - k * width / 2)
    cy = np.clip(cy, k * height / 2, canvas_h - k * height / 2)
    return np.stack([cx, cy, k], axis=1)


def _view_matrix(view: np.ndarray, height: int, width: int) -> np.ndarray:
    """2x3 map from frame pixel (x, y) to canvas pixel (pixel centres at integers)."""
    cx, cy, k = view
    return np.array([[k, 0, cx + k * (0.5 - width / 2) - 0.5], [0, k, cy + k * (0.5 - height / 2) - 0.5]])


def _motion(previous: np.ndarray, current: np.ndarray, height: int, width: int) -> np.ndarray:
    """2x3 affine map from frame t's pixel coordinates to frame t-1's (views of consecutive frames)."""
    a, b = (np.vstack([_view_matrix(v, height, width), [0, 0, 1]]) for v in (current, previous))
    return (np.linalg.inv(b) @ a)[:2]


def _flow(previous: np.ndarray, current: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, 2) displacement taking frame t's pixels to where the same scene point is in frame t-1."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    a, b = _view_matrix(current, height, width), _view_matrix(previous, height, width)
    canvas_x = a[0, 0] * xs + a[0, 2]
    canvas_y = a[1, 1] * ys + a[1, 2]
    prev_x = (canvas_x - b[0, 2]) / b[0, 0]
    prev_y = (canvas_y - b[1, 2]) / b[1, 1]
    return np.stack([prev_x - xs, prev_y - ys], axis=-1).astype(np.float32)


def _rain_amount(length: int, dry_prob: float, rng: np.random.Generator) -> np.ndarray:
    """Per-frame rain of one shot: 1 throughout, or stopping / starting within it, or none (dry)."""
    amount = np.ones(length)
    if rng.random() < dry_prob:
        event = ("stops", "starts", "dry")[int(rng.integers(3))]
        at = int(rng.integers(0, max(1, length - RAMP)))
        ramp = np.clip((np.arange(length) - at) / RAMP, 0, 1)
        amount = {"stops": 1 - ramp, "starts": ramp, "dry": np.zeros(length)}[event]
    return amount


class _ShotRain:
    """One shot's falling rain of a domain: circular streak sheets shifted along their fall each frame, composed
    over the background as the domain composes (veil, additive or screen blending, tint), one parameter draw."""

    def __init__(self, domain: str, height: int, width: int, scale: float, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng([seed, 3])
        spec = get_domain(domain)
        layers, self.angle, haze = domain_layers(domain, rng)
        self.height, self.width = height, width
        self.side = int(math.ceil(math.hypot(height, width))) + 4
        self.sheets = [streak_canvas(1, self.side, layer, scale, generator, torch.device("cpu"), circular=True)
                       for layer, _ in layers]  # fmt: skip
        self.speeds = [speed * scale for _, speed in layers]
        self.offsets = [layer.angle_offset + rng.uniform(-layer.angle_jitter, layer.angle_jitter) for layer, _ in
                        layers]  # fmt: skip
        has_haze = rng.random() < spec.haze_prob
        depth = torch.linspace(0, 1, height).view(1, 1, height, 1)
        self.haze = (haze if has_haze else 0.0) * (1 - spec.haze_depth * depth)
        self.airlight = float(rng.uniform(*AIRLIGHT))
        self.screen = bool(rng.random() < spec.screen)
        self.colour = torch.from_numpy(1 + spec.tint * (2 * rng.random(3) - 1)).float().view(1, 3, 1, 1)

    def streaks(self, index: int) -> torch.Tensor:
        rain = torch.zeros(1, 1, self.height, self.width)
        for sheet, speed, offset in zip(self.sheets, self.speeds, self.offsets, strict=True):
            moved = torch.roll(sheet, shifts=int(round(speed * index)) % self.side, dims=2)
            rain = rain + rotate_onto(moved, torch.tensor([self.angle + offset]), self.height, self.width)
        return rain

    def over(self, clean: torch.Tensor, index: int, amount: float) -> torch.Tensor:
        """(1, 3, H, W) clean in [0, 1] -> rainy at frame `index` with `amount` of the rain (0: unchanged)."""
        if amount <= 0:
            return clean
        haze = self.haze * amount
        hazy = clean * (1 - haze) + self.airlight * haze
        streaks = self.streaks(index) * amount * self.colour
        if self.screen:
            return (1 - (1 - hazy.clamp(0, 1)) * (1 - streaks.clamp(0, 1))).clamp(0, 1)
        return (hazy + streaks).clamp(0, 1)


def _scene(split: str, height: int, width: int, rng: np.random.Generator, sampler: object | None,
           scenes: Sequence[np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """A shot's RGB uint8 canvas: one of `scenes` whole (scaled to fit the canvas, mirrored beyond its edges), a
    crop of a test photo, or a training scene (photo crop or dead leaves)."""
    if scenes is not None:
        image = scenes[int(rng.integers(len(scenes)))]
        scale = min(height / image.shape[0], width / image.shape[1])
        size = (min(width, round(image.shape[1] * scale)), min(height, round(image.shape[0] * scale)))
        fit = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
        top, left = (height - size[1]) // 2, (width - size[0]) // 2
        return cv2.copyMakeBorder(fit, top, height - size[1] - top, left, width - size[0] - left,
                                  cv2.BORDER_REFLECT)  # fmt: skip
    if split == "test":
        photos = clean_photos("test")
        return random_background(photos[int(rng.integers(len(photos)))], height, width, rng)
    return sampler.sample(height, rng, width=width)[0]


def render_clip(domain: str, seed: int, config: ClipConfig = ClipConfig(), split: str = "test",
                sampler: object | None = None, scenes: Sequence[np.ndarray] | None = None) -> Clip:  # fmt: skip
    """One clip with `domain`'s rain over `split`'s scenes ("test": the test-only photos; "train": `sampler`, a
    `derain.data.scenes.SceneSampler`, or one built from `config.photo_fraction`), or over crops of `scenes` (RGB
    uint8 images) when given."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    get_domain(domain)
    if split == "train" and sampler is None:
        from derain.data.scenes import SceneSampler

        sampler = SceneSampler(config.photo_fraction, pool=64, seed=seed)
    rng = np.random.default_rng([seed, domain_seed("clip", domain)])
    height, width, frames = config.height, config.width, config.frames
    scale = float(rng.uniform(*config.scale))
    count = int(rng.integers(config.shots[0], config.shots[1] + 1))
    count = min(count, frames)
    cuts = sorted(rng.choice(np.arange(1, frames), size=count - 1, replace=False).tolist()) if count > 1 else []
    starts = [0, *cuts]
    ends = [*cuts, frames]
    canvas = (int(math.ceil(CANVAS * height)), int(math.ceil(CANVAS * width)))
    rainy = np.empty((frames, height, width, 3), np.uint8)
    clean = np.empty_like(rainy)
    flow = np.full((frames, height, width, 2), np.nan, np.float32)
    camera = np.full((frames, 2, 3), np.nan)
    amounts, motions = np.empty(frames), []
    for shot, (start, end) in enumerate(zip(starts, ends, strict=True)):
        scene = _scene(split, *canvas, rng, sampler, scenes)
        drawn = int(rng.integers(len(config.motions)))
        motion = config.motions[shot % len(config.motions) if config.in_order else drawn]
        motions.append(motion)
        path = _camera_path(motion, end - start, height, width, canvas, rng)
        rain = _ShotRain(domain, height, width, scale, domain_seed(seed, domain, shot))
        amounts[start:end] = _rain_amount(end - start, config.dry_prob, rng)
        for offset, view in enumerate(path):
            index = start + offset
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            frame = cv2.warpAffine(scene, _view_matrix(view, height, width), (width, height), flags=flags,
                                   borderMode=cv2.BORDER_REFLECT)  # fmt: skip
            clean[index] = frame
            background = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255.0
            wet = rain.over(background, index, float(amounts[index]))
            rainy[index] = wet[0].mul(255).round().byte().permute(1, 2, 0).numpy()
            if offset > 0:
                flow[index] = _flow(path[offset - 1], view, height, width)
                camera[index] = _motion(path[offset - 1], view, height, width)
    return Clip(rainy, clean, tuple(starts), amounts, tuple(motions), domain, flow, camera)


def write_footage(out: str | Path, domain: str, clips: int, config: ClipConfig, seed: int = 0, dry: bool = False,
                  sampler: object | None = None, video: bool = False) -> list[Path]:  # fmt: skip
    """Unpaired footage of a camera, as a user would hand it over: `clips` clips of `domain`'s rain over training
    scenes (`dry`: the clean frames only, of clips drawn with other seeds than any rainy one), each a folder of PNG
    frames (`video`: an .mp4 file instead). Returns the clips' paths."""
    from derain.data.io import write_image

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(clips):
        clip_seed = domain_seed(seed, "footage", "dry" if dry else "rainy", index)
        clip = render_clip(domain, clip_seed, config, split="train", sampler=sampler)
        frames = clip.clean if dry else clip.rainy
        name = f"{'dry' if dry else domain}_{index:02d}"
        if video:
            path = out / f"{name}.mp4"
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (config.width, config.height))
            for frame in frames:
                writer.write(np.ascontiguousarray(frame[..., ::-1]))
            writer.release()
        else:
            path = out / name
            for number, frame in enumerate(frames):
                write_image(path / f"{number:04d}.png", frame)
        paths.append(path)
    return paths
