"""The state a temporal de-rainer carries along one stream, and when it is thrown away.

A temporal network (`derain.models.temporal`) takes the previous frame and its own previous output beside each
frame. `TemporalState` keeps them for one stream and resets (the next frame has no past, so the network is exactly
the per-frame one) on:

- the first frame, and a frame of another size (a resolution change);
- a gap: the frame's timestamp is more than `max_gap_s` after the previous one (a dropped stretch, a reconnect);
- a cut: the median change between the frame and the previous one of their luma, eroded by 9x9 (rain only
  brightens, and streaks are thinner than that) and averaged over 8x8 blocks, is above `cut_levels` grey levels.
  The erosion takes the streaks out and the median ignores the blocks that moving objects change; on 72 rendered
  clips of every rain domain (camera motion included) frames within a shot measure 1.5 median / 7.6 at the 99th
  percentile (0.2 % above the threshold), cuts 22 at the 5th percentile (99 % found; benchmarks/results/
  temporal_oracle.md; `benchmarks/video_derainer.py` counts the resets on its test clips). A missed cut costs
  little: the network was trained with half its cuts unreset;
- `reset()` (a seek, a flush, a source reopened).

Before the past is handed to the network it is aligned to the frame: the camera's motion between the previous
output and the frame is estimated as a similarity transform (ORB keypoints on 5x5-eroded luma, which takes rain
streaks out, matched and fitted by RANSAC on a copy at most `ALIGN_WIDTH` wide; kept only where it explains the
eroded frames better than no motion), and both previous images are warped onto the frame; pixels the previous frame
did not see take the frame's own values (no past there). A car's camera pans, zooms and moves forward: unaligned,
the past is useless wherever the scene has texture (an aligned moving average of the per-frame outputs gains
+0.9 dB on rendered clips, unaligned +0.1). On 60 rendered clips of five rain domains and every camera motion (the
clean previous frame standing in for the previous output) the estimate is off by 0.3 px (median; 1.0 px at the 90th
percentile) where no motion is off by 1.4 px (4.3), and worse than no motion in 3 % of the frames (both:
benchmarks/results/temporal_oracle.md).

It holds host frames (uint8 BGR); one state per stream: `Derainer.clone()` starts a fresh one.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

CUT_LEVELS = 12.0  # grey levels of median block-mean change (see the module docstring)
MAX_GAP_S = 0.5
BLOCK = 8
ERODE = 9
ALIGN_WIDTH = 384
ALIGN_ERODE = 5
MIN_INLIERS = 12


def block_luma(frame: np.ndarray) -> np.ndarray:
    """uint8 BGR (H, W, 3) -> float32 8x8-block means of its luma eroded by 9x9 (rain streaks removed)."""
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)
    grey = cv2.erode(grey, np.ones((ERODE, ERODE), np.uint8)).astype(np.float32)
    height, width = grey.shape
    small = (max(1, width // BLOCK), max(1, height // BLOCK))
    return cv2.resize(grey, small, interpolation=cv2.INTER_AREA)


def scene_change(frame: np.ndarray, previous: np.ndarray) -> float:
    """Median absolute change of eroded block-mean luma between two frames of one size, grey levels."""
    return float(np.median(np.abs(block_luma(frame) - block_luma(previous))))


def _align_grey(frame: np.ndarray, scale: float) -> np.ndarray:
    grey = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_BGR2GRAY)
    if scale != 1.0:
        grey = cv2.resize(grey, (round(grey.shape[1] / scale), round(grey.shape[0] / scale)),
                          interpolation=cv2.INTER_AREA)  # fmt: skip
    return cv2.erode(grey, np.ones((ALIGN_ERODE, ALIGN_ERODE), np.uint8))


def _full_resolution(matrix: np.ndarray, scale: float) -> np.ndarray:
    """A 2x3 pixel map estimated on a copy `scale` times smaller, for the full-size frames."""
    linear, shift = matrix[:, :2], matrix[:, 2]
    return np.concatenate([linear, (scale * shift + (scale / 2 - 0.5) * (1 - linear.sum(axis=1)))[:, None]], axis=1)


def camera_motion(frame: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """2x3 affine map from `frame`'s pixel coordinates to `previous`'s (uint8 BGR, one size): the camera's motion as a
    similarity transform, or the identity where none is found or it explains the frames worse than no motion."""
    identity = np.eye(2, 3)
    scale = max(1.0, frame.shape[1] / ALIGN_WIDTH)
    a, b = _align_grey(frame, scale), _align_grey(previous, scale)
    orb = cv2.ORB_create(600, fastThreshold=10, edgeThreshold=15, patchSize=15)
    keys_a, desc_a = orb.detectAndCompute(a, None)
    keys_b, desc_b = orb.detectAndCompute(b, None)
    if desc_a is None or desc_b is None or len(keys_a) < MIN_INLIERS or len(keys_b) < MIN_INLIERS:
        return identity
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(desc_a, desc_b)
    if len(matches) < MIN_INLIERS:
        return identity
    points_a = np.float32([keys_a[m.queryIdx].pt for m in matches])
    points_b = np.float32([keys_b[m.trainIdx].pt for m in matches])
    matrix, inliers = cv2.estimateAffinePartial2D(points_a, points_b, method=cv2.RANSAC, ransacReprojThreshold=1.5,
                                                  maxIters=500)  # fmt: skip
    if matrix is None or inliers is None or int(inliers.sum()) < MIN_INLIERS:
        return identity
    moved = cv2.warpAffine(b, matrix, (a.shape[1], a.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REFLECT)  # fmt: skip
    margin = 4
    inner = (slice(margin, -margin), slice(margin, -margin))
    if np.abs(moved[inner].astype(np.int16) - a[inner]).mean() >= np.abs(b[inner].astype(np.int16) - a[inner]).mean():
        return identity
    return _full_resolution(matrix.astype(np.float64), scale)


def align(frame: np.ndarray, images: tuple[np.ndarray, ...], matrix: np.ndarray) -> tuple[np.ndarray, ...]:
    """`images` of the previous frame warped onto `frame` by `matrix` (frame pixel -> previous pixel, bilinear);
    where that lands outside the previous frame they take `frame`'s values (no past there)."""
    if np.array_equal(matrix, np.eye(2, 3)):
        return images
    height, width = frame.shape[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    # where the previous frame was seen: a mask warped the same way (its border pixels fall off by interpolation)
    seen = cv2.warpAffine(np.full((height, width), 255, np.uint8), matrix, (width, height), flags=flags,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)  # fmt: skip
    outside = (seen < 255).astype(np.uint8)
    warped = []
    for image in images:
        moved = cv2.warpAffine(image, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        cv2.copyTo(frame, outside, moved)
        warped.append(moved)
    return tuple(warped)


class TemporalState:
    """One stream's past for a temporal de-rainer. The past is one (frame, output, timestamp) tuple replaced whole,
    so `reset()` from another thread (a stream's capture side, on a reconnect) never leaves half of it behind.

    Args:
        cut_levels: the scene-change above which a frame is a cut (None: never detect cuts).
        max_gap_s: the timestamp gap above which the past is too old (None: ignore timestamps).
        align: warp the past onto each frame by the camera's estimated motion (`camera_motion`).
    """

    def __init__(self, cut_levels: float | None = CUT_LEVELS, max_gap_s: float | None = MAX_GAP_S,
                 align: bool = True) -> None:  # fmt: skip
        self.cut_levels, self.max_gap_s, self.align = cut_levels, max_gap_s, align
        self._past: tuple[np.ndarray, np.ndarray, float | None] | None = None
        self.resets: Counter[str] = Counter()  # why the past was dropped, for logs and benchmarks

    @property
    def frame(self) -> np.ndarray | None:
        past = self._past
        return None if past is None else past[0]

    @property
    def output(self) -> np.ndarray | None:
        past = self._past
        return None if past is None else past[1]

    def reset(self, reason: str = "asked") -> None:
        if self._past is not None:
            self.resets[reason] += 1
            log.debug("temporal state reset: %s", reason)
        self._past = None

    def why_not(self, frame: np.ndarray, timestamp: float | None = None, past: tuple | None = None) -> str | None:
        """Why the stored past (or `past`) cannot serve `frame` (None: it can)."""
        past = self._past if past is None else past
        if past is None:
            return "first frame"
        before, _, stamp = past
        if frame.shape != before.shape:
            return "size"
        if self.max_gap_s is not None and timestamp is not None and stamp is not None \
                and not 0 <= timestamp - stamp <= self.max_gap_s:  # fmt: skip
            return "gap"
        if self.cut_levels is not None and scene_change(frame, before) > self.cut_levels:
            return "cut"
        return None

    def previous(self, frame: np.ndarray, timestamp: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(previous frame, previous output) for `frame`, aligned to it, or None after a reset (no past)."""
        past = self._past
        reason = self.why_not(frame, timestamp, past) if past is not None else "first frame"
        if reason is not None:
            if reason != "first frame":
                self.resets[reason] += 1
            return None
        before, made, _ = past
        if not self.align:
            return before, made
        return align(frame, (before, made), camera_motion(frame, made))

    def update(self, frame: np.ndarray, output: np.ndarray, timestamp: float | None = None) -> None:
        self._past = (frame, output, timestamp)

    def describe(self) -> dict[str, Any]:
        return {"cut_levels": self.cut_levels, "max_gap_s": self.max_gap_s, "align": self.align,
                "resets": dict(self.resets)}  # fmt: skip
