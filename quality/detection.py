"""Detection agreement: how well a detector's boxes on processed frames match its boxes on the clean frames.

The detector's output on the clean frames is the reference (no labels needed): a box on a rainy or de-rained frame
is a true positive when it overlaps an unmatched reference box of the same frame by IoU >= 0.5 (greedy, highest
IoU first), a false positive otherwise; unmatched reference boxes are misses. F1 = 2 TP / (2 TP + FP + FN); the
clean frames score 1 against themselves, so `1 - F1` is what the weather took away.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = Sequence[float]  # x, y, w, h


def iou(a: Box, b: Box) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    inter_w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    inter_h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = inter_w * inter_h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def match(found: Sequence[Box], reference: Sequence[Box], threshold: float = 0.5) -> tuple[int, int, int]:
    """(true positives, false positives, misses) of one frame's boxes against its reference boxes."""
    pairs = sorted(((iou(f, r), i, j) for i, f in enumerate(found) for j, r in enumerate(reference)), reverse=True)
    used_found, used_reference = set(), set()
    for overlap, i, j in pairs:
        if overlap < threshold:
            break
        if i not in used_found and j not in used_reference:
            used_found.add(i)
            used_reference.add(j)
    hits = len(used_found)
    return hits, len(found) - hits, len(reference) - hits


def counts(found: Sequence[Sequence[Box]], reference: Sequence[Sequence[Box]], threshold: float = 0.5) -> np.ndarray:
    """Per frame (TP, FP, FN), shape (N, 3)."""
    if len(found) != len(reference):
        raise ValueError(f"{len(found)} frames of boxes against {len(reference)} reference frames")
    return np.array([match(f, r, threshold) for f, r in zip(found, reference, strict=True)], dtype=np.int64
                    ).reshape(-1, 3)  # fmt: skip


def f1(tally: np.ndarray) -> float:
    """F1 of summed (TP, FP, FN) counts (NaN when there is nothing to find and nothing found)."""
    tp, fp, fn = np.asarray(tally).reshape(-1, 3).sum(axis=0)
    return float(2 * tp / (2 * tp + fp + fn)) if (2 * tp + fp + fn) else float("nan")


def f1_ci(groups: Sequence[np.ndarray], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the pooled F1, resampling groups (clips) of per-frame counts."""
    sums = np.array([np.asarray(g).reshape(-1, 3).sum(axis=0) for g in groups])
    if len(sums) < 2:
        value = f1(sums)
        return value, value
    rng = np.random.default_rng(seed)
    picks = sums[rng.integers(0, len(sums), (resamples, len(sums)))].sum(axis=1)
    scores = [f1(p) for p in picks]
    low, high = np.nanpercentile(scores, [2.5, 97.5])
    return float(low), float(high)
