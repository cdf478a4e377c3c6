"""The state a temporal de-rainer carries along one stream, and when it is thrown away.

A temporal network (`derain.models.temporal`) takes the previous frame and its own previous output beside each
frame. `TemporalState` keeps them for one stream and resets (the next frame has no past, so the network is exactly
the per-frame one) on:

- the first frame, and a frame of another size (a resolution change);
- a gap: the frame's timestamp is more than `max_gap_s` after the previous one (a dropped stretch, a reconnect);
- a cut: the median change between the frame and the previous one of their luma, eroded by 9x9 (rain only
  brightens, and streaks are thinner than that) and averaged over 8x8 blocks, is above `cut_levels` grey levels.
  The erosion takes the streaks out and the median ignores the blocks that moving objects change; on 72 rendered
  clips of every rain domain (camera motion included) frames within a shot measure 1.3 median / 6.7 at the 99th
  percentile, cuts 12.6 at least and 26 at the 5th percentile (`benchmarks/video_derainer.py` counts the resets
  on its test clips). A missed cut costs little: the network was trained with half its cuts unreset;
- `reset()` (a seek, a flush, a source reopened).

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


class TemporalState:
    """One stream's past for a temporal de-rainer.

    Args:
        cut_levels: the scene-change above which a frame is a cut (None: never detect cuts).
        max_gap_s: the timestamp gap above which the past is too old (None: ignore timestamps).
    """

    def __init__(self, cut_levels: float | None = CUT_LEVELS, max_gap_s: float | None = MAX_GAP_S) -> None:
        self.cut_levels, self.max_gap_s = cut_levels, max_gap_s
        self.frame: np.ndarray | None = None
        self.output: np.ndarray | None = None
        self.timestamp: float | None = None
        self.resets: Counter[str] = Counter()  # why the past was dropped, for logs and benchmarks

    def reset(self, reason: str = "asked") -> None:
        if self.frame is not None:
            self.resets[reason] += 1
            log.debug("temporal state reset: %s", reason)
        self.frame = self.output = self.timestamp = None

    def why_not(self, frame: np.ndarray, timestamp: float | None = None) -> str | None:
        """Why the stored past cannot serve `frame` (None: it can)."""
        if self.frame is None:
            return "first frame"
        if frame.shape != self.frame.shape:
            return "size"
        if self.max_gap_s is not None and timestamp is not None and self.timestamp is not None \
                and not 0 <= timestamp - self.timestamp <= self.max_gap_s:  # fmt: skip
            return "gap"
        if self.cut_levels is not None and scene_change(frame, self.frame) > self.cut_levels:
            return "cut"
        return None

    def previous(self, frame: np.ndarray, timestamp: float | None = None) -> tuple[np.ndarray, np.ndarray] | None:
        """(previous frame, previous output) for `frame`, or None after a reset (no past)."""
        reason = self.why_not(frame, timestamp)
        if reason is not None:
            if reason != "first frame":
                self.resets[reason] += 1
            return None
        return self.frame, self.output

    def update(self, frame: np.ndarray, output: np.ndarray, timestamp: float | None = None) -> None:
        self.frame, self.output, self.timestamp = frame, output, timestamp

    def describe(self) -> dict[str, Any]:
        return {"cut_levels": self.cut_levels, "max_gap_s": self.max_gap_s, "resets": dict(self.resets)}
