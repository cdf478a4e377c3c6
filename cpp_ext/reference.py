"""NumPy references of the pixel-path kernels (what `kernels/frame_io.cu` must reproduce).

BGR <-> tensor and tiles are the frame contract itself (`derain.frames.to_network`, `from_network`, `tiled`);
this module adds NV12, the 4:2:0 layout of hardware decoders and Jetson cameras:
Y' = Kr R + Kg G + Kb B, Cb = (B - Y') / (2 (1 - Kb)), Cr = (R - Y') / (2 (1 - Kr)) with (Kr, Kb) = (0.299, 0.114)
for BT.601 and (0.2126, 0.0722) for BT.709; codes Y = 16 + 219 Y', C = 128 + 224 C (limited range) or
Y = 255 Y', C = 128 + 255 C (full range). Decoding pairs each pixel with the chroma sample of its 2x2 block.
"""

from __future__ import annotations

import numpy as np

from derain.frames import FrameError, pad_index, padded_size

MATRICES = {601: (0.299, 0.114), 709: (0.2126, 0.0722)}


def _spec(matrix: int, full_range: bool) -> tuple[float, float, float, float, float]:
    if matrix not in MATRICES:
        raise FrameError(f"YUV matrix must be 601 or 709, got {matrix}")
    kr, kb = MATRICES[matrix]
    return (kr, kb, 0.0, 255.0, 255.0) if full_range else (kr, kb, 16.0, 219.0, 224.0)


def nv12_to_network(luma: np.ndarray, chroma: np.ndarray, matrix: int = 601, full_range: bool = False,
                    multiple: int = 1, dtype: type = np.float32, size: tuple[int, int] | None = None
                    ) -> np.ndarray:  # fmt: skip
    """NV12 planes, luma (N, H, W) uint8 and chroma (N, H/2, W/2, 2) uint8 (Cb, Cr interleaved) -> RGB (N, 3, Hp, Wp)
    in [0, 1], padded to `multiple` (or to `size`) as the frame contract pads (`derain.frames.pad_index`; computed
    in float32, as the kernel)."""
    if luma.ndim != 3 or chroma.ndim != 4 or chroma.shape[-1] != 2:
        raise FrameError(f"expected luma (N, H, W) and chroma (N, H/2, W/2, 2), found {luma.shape} and {chroma.shape}")
    kr, kb, y_offset, y_scale, c_scale = _spec(matrix, full_range)
    height, width = luma.shape[1:]
    rows, cols = np.arange(height) // 2, np.arange(width) // 2
    up = chroma[:, rows][:, :, cols].astype(np.float32)
    y = (luma.astype(np.float32) - np.float32(y_offset)) / np.float32(y_scale)
    cb = (up[..., 0] - np.float32(128)) / np.float32(c_scale)
    cr = (up[..., 1] - np.float32(128)) / np.float32(c_scale)
    r = y + np.float32(2 * (1 - kr)) * cr
    b = y + np.float32(2 * (1 - kb)) * cb
    g = (y - np.float32(kr) * r - np.float32(kb) * b) / np.float32(1 - kr - kb)
    rgb = np.clip(np.stack([r, g, b], axis=1), 0.0, 1.0)
    out_h, out_w = size if size is not None else padded_size(height, width, multiple)
    rows, cols = pad_index(np.arange(out_h), height, multiple), pad_index(np.arange(out_w), width, multiple)
    rgb = rgb[:, :, rows][:, :, :, cols]
    return np.ascontiguousarray(rgb.astype(dtype))


def network_to_nv12(tensor: np.ndarray, height: int, width: int, matrix: int = 601, full_range: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """RGB (N, 3, Hp, Wp) in [0, 1] -> NV12 planes (luma (N, H, W), chroma (N, H/2, W/2, 2)) of the top-left H x W
    (even), chroma the mean of each 2x2 block, codes rounded half to even."""
    if height % 2 or width % 2:
        raise FrameError(f"NV12 needs an even frame size, got {width}x{height}")
    kr, kb, y_offset, y_scale, c_scale = _spec(matrix, full_range)
    rgb = np.clip(tensor[:, :, :height, :width].astype(np.float32), 0.0, 1.0)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    y = np.float32(kr) * r + np.float32(1 - kr - kb) * g + np.float32(kb) * b
    cb = (b - y) / np.float32(2 * (1 - kb))
    cr = (r - y) / np.float32(2 * (1 - kr))
    luma = np.clip(np.rint(np.float32(y_offset) + np.float32(y_scale) * y), 0, 255).astype(np.uint8)

    def block_mean(plane: np.ndarray) -> np.ndarray:
        n = plane.shape[0]
        return plane.reshape(n, height // 2, 2, width // 2, 2).sum(axis=(2, 4)) * np.float32(0.25)

    chroma = np.stack([block_mean(cb), block_mean(cr)], axis=-1)
    chroma = np.clip(np.rint(np.float32(128) + np.float32(c_scale) * chroma), 0, 255).astype(np.uint8)
    return luma, chroma
