"""The frame contract: how a camera frame becomes a network tensor and back. Torch-free; numpy is the reference.

Every implementation follows these rules and is tested against this module: the ONNX frame graph and the PyTorch
backend (`derain.models.frame_io.FrameIO`), the host side of float graphs and engines (`to_network` /
`from_network` below), and the CUDA kernels of `derain.cpp_ext`.

- Frames at the edges are uint8 (H, W, 3) BGR, OpenCV's convention, or a batch (N, H, W, 3). Grey, alpha, 16-bit
  and float frames are refused with the conversion to make, never converted silently.
- In: channels reversed to RGB, cast to float32, divided by 255 (in float32; FP16 networks take the float32 value
  rounded to FP16), laid out (N, 3, H, W).
- Padding: bottom and right only. To the network's size multiple by edge replication (`PAD_MODE`; torch
  "replicate", ONNX Pad mode "edge", clamped indices in a kernel): the frame's own result, "native". Up to a
  static artifact's larger size, the multiple-padded frame is then repeated periodically (`pad_index`: clamp to
  the frame, modulo the padded size). Chosen by measurement (`benchmarks/frame_sizes.py`, border-band PSNR-Y on
  v2 rain): edge replication across a large pad draws long straight stripes the network removes as rain (-3 dB
  in the band), mirroring flips streaks into chevrons (-1.5 dB); repetition keeps streaks and scene statistics
  and stays within noise of the native result.
- Out: cropped to the frame's H x W, clamped to [0, 1], times 255, rounded half to even (numpy `rint`, torch
  `round`, ONNX `Round`, CUDA `rintf`), cast to uint8, channels back to BGR, (N, H, W, 3).
- Frames larger than a backend accepts are cut into tiles (`tile_origins`) that share at least twice the
  network's context (`context`: the radius of its measured receptive field, from the artifact's metadata) plus
  a blend band; a tile's pixels within `context` of an edge it shares with a neighbour get weight 0 (they saw the
  tile's border, not the frame), then the weight rises linearly over `BLEND` pixels (`tile_weights`). Every tile
  starts on the network's multiple and the last one ends flush with the (multiple-padded) frame, so each kept
  pixel saw what it sees in the whole frame: tiles give the network's own result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from derain.cli import InputError

PAD_MODE = "edge"
SCALE = 255.0
MIN_SIDE = 8  # smallest frame side a network takes (one 8x8 cell of the shallowest multiple)
MAX_SIDE = 8192
BLEND = 16  # pixels over which a tile's weight rises once it has seen its context
DEFAULT_CONTEXT = 96  # context of artifacts that record none (exported before it was measured; ours: 88)


class FrameError(InputError, ValueError):
    """A frame that the contract does not take: wrong dtype, channel count, rank or size."""


def frame_size(frame: Any) -> tuple[int, int]:
    """(H, W) of a uint8 BGR frame (H, W, 3) or batch (N, H, W, 3), numpy or any array with `shape` and `dtype`;
    a clear `FrameError` for anything else."""
    if frame is None:
        raise FrameError("no frame (None): the source returned nothing")
    shape, dtype = tuple(getattr(frame, "shape", ())), str(getattr(frame, "dtype", type(frame).__name__))
    if len(shape) not in (3, 4):
        hint = " (a grey frame: convert it with cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))" if len(shape) == 2 else ""
        raise FrameError(f"expected a uint8 BGR frame (H, W, 3) or batch (N, H, W, 3), found shape {shape}{hint}")
    channels = shape[-1]
    if channels != 3:
        hints = {1: "a grey frame: cv2.COLOR_GRAY2BGR", 4: "a frame with alpha: cv2.COLOR_BGRA2BGR"}
        hint = f" ({hints[channels]})" if channels in hints else ""
        raise FrameError(f"expected 3 colour channels (BGR), found {channels} in shape {shape}{hint}")
    if not dtype.endswith("uint8"):
        raise FrameError(f"expected uint8 pixels, found {dtype} (scale 16-bit or float frames to uint8 first)")
    height, width = shape[-3], shape[-2]
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise FrameError(f"frame {width}x{height} is outside the {MIN_SIDE}..{MAX_SIDE} pixels a side networks take")
    return height, width


def padded_size(height: int, width: int, multiple: int) -> tuple[int, int]:
    """H and W rounded up to the network's multiple."""
    return -(-height // multiple) * multiple, -(-width // multiple) * multiple


def as_batch(frames: np.ndarray) -> tuple[np.ndarray, bool]:
    """(N, H, W, 3) view of one frame or a batch, and whether the input was a single frame."""
    frame_size(frames)
    return (frames[None], True) if frames.ndim == 3 else (frames, False)


def pad_index(index: np.ndarray | int, size: int, multiple: int = 1) -> np.ndarray | int:
    """The source row (or column) of padded position `index` along a side of `size` pixels: edge replication up to
    the network's multiple, then periodic repetition of the multiple-padded side (the CUDA kernels' formula)."""
    period = -(-size // multiple) * multiple
    return np.minimum(np.asarray(index) % period, size - 1)


def pad_frames(frames: np.ndarray, height: int, width: int, multiple: int = 1) -> np.ndarray:
    """Pad (N, h, w, C) frames on the bottom and right to (N, height, width, C): edge replication to the multiple,
    then periodic repetition (`pad_index`)."""
    pad_h, pad_w = height - frames.shape[1], width - frames.shape[2]
    if pad_h < 0 or pad_w < 0:
        raise FrameError(f"cannot pad {frames.shape[2]}x{frames.shape[1]} frames down to {width}x{height}")
    if pad_h == 0 and pad_w == 0:
        return frames
    rows = pad_index(np.arange(height), frames.shape[1], multiple)
    cols = pad_index(np.arange(width), frames.shape[2], multiple)
    return frames[:, rows[:, None], cols[None, :]]


def to_network(frames: np.ndarray, multiple: int = 1, dtype: Any = np.float32, size: tuple[int, int] | None = None):
    """uint8 BGR frames (N, H, W, 3) or one frame -> (N, 3, Hp, Wp) RGB in [0, 1] of `dtype`.

    Args:
        multiple: pad H and W up to multiples of this.
        size: pad to exactly this (Hp, Wp) instead (a static engine's shape; at least the frame's size): edge
            replication to `multiple`, then periodic repetition.
    """
    batch, _ = as_batch(frames)
    height, width = size if size is not None else padded_size(batch.shape[1], batch.shape[2], multiple)
    padded = pad_frames(batch, height, width, multiple)
    tensor = padded[..., ::-1].transpose(0, 3, 1, 2).astype(np.float32) / np.float32(SCALE)
    return np.ascontiguousarray(tensor.astype(dtype, copy=False))


def from_network(tensor: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, 3, Hp, Wp) RGB float -> uint8 BGR frames (N, height, width, 3): crop, clamp, scale, round half to even."""
    if tensor.ndim != 4 or tensor.shape[1] != 3:
        raise FrameError(f"expected a network output (N, 3, H, W), found shape {tuple(tensor.shape)}")
    cropped = tensor[:, :, :height, :width].astype(np.float32)
    scaled = np.rint(np.clip(cropped, 0.0, 1.0) * np.float32(SCALE)).astype(np.uint8)
    return np.ascontiguousarray(scaled.transpose(0, 2, 3, 1)[..., ::-1])


def reference(network: Any, frames: np.ndarray, multiple: int = 1) -> np.ndarray:
    """Frame in -> frame out around `network`, a function from (N, 3, Hp, Wp) float32 to the same: the contract's
    reference path, which every backend must match."""
    batch, single = as_batch(frames)
    out = from_network(np.asarray(network(to_network(batch, multiple))), batch.shape[1], batch.shape[2])
    return out[0] if single else out


# ------------------------------------------------------------------------------------------------------- tiles


def tile_origins(size: int, tile: int, context: int, multiple: int = 1, blend: int = BLEND) -> list[int]:
    """Start offsets of tiles of `tile` pixels covering `size`: neighbours share at least 2 * `context` + `blend`
    pixels, every start is a multiple of the network's `multiple` (each tile sees the whole frame's down-sampling
    grid), and the last tile ends flush with the frame padded to the multiple (so it is padded as the whole frame
    is). A side no longer than `tile` is one tile, cut at the frame's border."""
    if tile % multiple:
        raise ValueError(f"tile ({tile}) must be a multiple of the network's {multiple}")
    stride = (tile - 2 * context - blend) // multiple * multiple
    if stride <= 0:
        raise ValueError(f"tile ({tile}) must exceed twice the context ({context}) plus the blend ({blend}) by the "
                         f"network's multiple ({multiple})")  # fmt: skip
    if size <= tile:
        return [0]
    last = -(-(size - tile) // multiple) * multiple
    starts = list(range(0, last, stride))
    return [*starts, last]


def tile_context(tile: tuple[int, int], context: int, multiple: int = 1, blend: int = BLEND) -> int:
    """`context`, or for small tiles (small profiles) the most that keeps the stride at half a tile: more would
    multiply the tiles (a 1080p frame through 192x192 tiles at the largest context that fits: thousands)."""
    room = (min(tile) // 2 - blend) // 2
    if room < 0:
        raise ValueError(f"tiles of {tile[1]}x{tile[0]} leave no room for a blend of {blend} pixels")
    return min(context, room)


def tile_weights(start: int, length: int, size: int, context: int, blend: int = BLEND) -> np.ndarray:
    """Float32 weights (length,) of a tile at `start` along a side of `size`: 0 within `context` of an edge shared
    with a neighbouring tile, rising linearly over `blend` pixels after it, 1 elsewhere (and at the frame's own
    edges)."""
    position = np.arange(length, dtype=np.float32)
    weight = np.ones(length, np.float32)
    step = np.float32(blend + 1)
    if start > 0:
        weight = np.minimum(weight, np.clip((position - np.float32(context - 1)) / step, 0, 1))
    if start + length < size:
        weight = np.minimum(weight, np.clip((np.float32(length - context) - position) / step, 0, 1))
    return weight.astype(np.float32)


def tiled(run: Any, frame: np.ndarray, tile: tuple[int, int], context: int, multiple: int = 1) -> np.ndarray:
    """De-rain one uint8 frame (H, W, 3) larger than `tile` = (th, tw) with `run` (a frame-in, frame-out function
    on (1, h, w, 3) batches of at most the tile's size), keeping from each tile what saw `context` pixels around it;
    returns uint8 (H, W, 3)."""
    height, width = frame.shape[:2]
    total = np.zeros((height, width, 3), np.float32)
    weight = np.zeros((height, width, 1), np.float32)
    for top in tile_origins(height, tile[0], context, multiple):
        for left in tile_origins(width, tile[1], context, multiple):
            window = np.ascontiguousarray(frame[top : top + tile[0], left : left + tile[1]])
            rows, cols = window.shape[:2]
            restored = np.asarray(run(window[None]))[0].astype(np.float32)
            w = (tile_weights(top, rows, height, context)[:, None, None]
                 * tile_weights(left, cols, width, context)[None, :, None])  # fmt: skip
            total[top : top + rows, left : left + cols] += restored * w
            weight[top : top + rows, left : left + cols] += w
    return np.rint(total / weight).clip(0, 255).astype(np.uint8)
