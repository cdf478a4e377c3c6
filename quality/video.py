"""Video metrics: per-frame fidelity and temporal stability of a restored clip against its clean twin.

- `frame_scores`: PSNR-Y / SSIM-Y per frame (MATLAB convention, as every other table here).
- `flicker`: the mean frame-to-frame change of the output's luma on pixels that do not move, minus the clean
  video's own change there, in grey levels (0: as steady as the clean video). "Do not move": the clean video's
  optical flow (or an exact flow given by a renderer) is under `still_px` pixels there and its luma changes by at
  most `still_levels`.
- `warping_error`: Lai et al. (ECCV 2018): the previous output warped to the current frame by the optical flow of
  the *clean* video, against the current output, mean squared RGB difference in [0, 1] over pixels that are not
  occluded (forward-backward flow consistency, and inside the frame), averaged over frame pairs; reported beside
  the same number for the clean video itself (its floor: interpolation and flow error).

Frame pairs across a cut (`cuts`: the first frame of every shot) are skipped. Frames are uint8 RGB (T, H, W, 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch

from derain.quality.metrics import psnr, ssim

LUMA = np.array([65.481, 128.553, 24.966]) / 255.0  # BT.601 Y' of RGB in [0, 255], without the +16 offset


def luma(frames: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> float luma in grey levels (BT.601 weights)."""
    return frames.astype(np.float32) @ LUMA.astype(np.float32)


def frame_scores(output: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
    """PSNR-Y and SSIM-Y of every frame, (T,) each."""
    if output.shape != clean.shape or output.ndim != 4 or output.shape[-1] != 3:
        raise ValueError(f"expected two uint8 RGB clips (T, H, W, 3) of one shape, got {output.shape}, {clean.shape}")
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).double() / 255.0  # noqa
    pred, target = as_tensor(output), as_tensor(clean)
    return {"psnr_y": psnr(pred, target, "y").clamp(max=100).numpy(), "ssim_y": ssim(pred, target, "y").numpy()}


def pairs(frames: int, cuts: Sequence[int] = (0,)) -> list[int]:
    """The frames t >= 1 whose predecessor t-1 is in the same shot."""
    starts = set(cuts) | {0}
    return [t for t in range(1, frames) if t not in starts]


def optical_flow(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """(H, W, 2) flow from `current`'s pixels to where they are in `previous` (DIS, medium preset, on luma)."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    a = np.clip(luma(current), 0, 255).astype(np.uint8)
    b = np.clip(luma(previous), 0, 255).astype(np.uint8)
    return dis.calc(a, b, None)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` sampled at pixel + flow (bilinear), and where that lands inside the frame."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    warped = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return warped, inside


def visible(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose backward flow (t -> t-1) is undone by the forward flow (t-1 -> t) there (not
    occluded; Sundaram et al.'s test) and lands inside frame t-1."""
    returned, inside = warp(forward, backward)
    mismatch = np.sum((backward + returned) ** 2, axis=-1)
    scale = np.sum(backward**2, axis=-1) + np.sum(returned**2, axis=-1)
    return inside & (mismatch <= 0.01 * scale + 0.5)


class CleanMotion:
    """The clean clip's flow between consecutive frames, computed once and shared by every output scored on it.

    Args:
        clean: uint8 RGB (T, H, W, 3).
        cuts: first frames of shots.
        flow: exact (T, H, W, 2) flow t -> t-1 from a renderer (NaN where none); None: DIS on the clean frames.
    """

    def __init__(self, clean: np.ndarray, cuts: Sequence[int] = (0,), flow: np.ndarray | None = None) -> None:
        self.clean, self.frames = clean, pairs(len(clean), cuts)
        self.backward, self.masks = {}, {}
        for t in self.frames:
            if flow is not None and np.isfinite(flow[t]).all():
                backward = flow[t]
                _, inside = warp(clean[t - 1], backward)
                mask = inside
            else:
                backward = optical_flow(clean[t], clean[t - 1])
                mask = visible(backward, optical_flow(clean[t - 1], clean[t]))
            self.backward[t], self.masks[t] = backward, mask

    def still(self, t: int, still_px: float = 0.25, still_levels: float = 2.0) -> np.ndarray:
        """Pixels of frame t that do not move (flow under `still_px`, clean luma change at most `still_levels`)."""
        moved = np.hypot(self.backward[t][..., 0], self.backward[t][..., 1])
        change = np.abs(luma(self.clean[t]) - luma(self.clean[t - 1]))
        return (moved < still_px) & (change <= still_levels)


def flicker(output: np.ndarray, motion: CleanMotion, **still: float) -> float:
    """Mean |luma change| of `output` on still pixels minus the clean clip's there, grey levels (NaN: none)."""
    extra, count = 0.0, 0
    for t in motion.frames:
        mask = motion.still(t, **still)
        if not mask.any():
            continue
        change = np.abs(luma(output[t]) - luma(output[t - 1]))[mask].sum()
        reference = np.abs(luma(motion.clean[t]) - luma(motion.clean[t - 1]))[mask].sum()
        extra += float(change - reference)
        count += int(mask.sum())
    return extra / count if count else float("nan")


def warping_error(output: np.ndarray, motion: CleanMotion) -> float:
    """Lai et al.'s warping error of `output` (mean over frame pairs of the masked MSE, RGB in [0, 1])."""
    errors = []
    for t in motion.frames:
        mask = motion.masks[t]
        if not mask.any():
            continue
        warped, _ = warp(output[t - 1], motion.backward[t])
        squared = ((warped.astype(np.float32) - output[t].astype(np.float32)) / 255.0) ** 2
        errors.append(float(squared.sum(axis=-1)[mask].sum() / (3 * mask.sum())))
    return float(np.mean(errors)) if errors else float("nan")


def clip_scores(output: np.ndarray, clean: np.ndarray, motion: CleanMotion | None = None, cuts: Sequence[int] = (0,)
                ) -> dict[str, float]:  # fmt: skip
    """One clip's means: psnr_y, ssim_y, flicker (grey levels over the clean video's), warping_error."""
    motion = motion or CleanMotion(clean, cuts)
    per_frame = frame_scores(output, clean)
    return {"psnr_y": float(per_frame["psnr_y"].mean()), "ssim_y": float(per_frame["ssim_y"].mean()),
            "flicker": flicker(output, motion), "warping_error": warping_error(output, motion)}  # fmt: skip
