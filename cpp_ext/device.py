"""Launch the pixel-path kernels on a GPU (cupy: NVRTC at first use, cached by cupy per GPU and source hash).

`FrameKernels` takes and returns device arrays (cupy, or anything with `__cuda_array_interface__`, e.g. torch CUDA
tensors via `cupy.asarray`), launches on the given stream, and never copies to the host. Without a GPU or cupy,
constructing it raises `KernelBuildError` and callers keep the reference path (`derain.frames`), logging which.
"""

from __future__ import annotations

import logging
from typing import Any

from derain.cpp_ext import KERNELS, SOURCE, KernelBuildError

log = logging.getLogger(__name__)
BLOCK = (32, 8, 1)


def _grid(width: int, height: int, batch: int) -> tuple[int, int, int]:
    return (-(-width // BLOCK[0]), -(-height // BLOCK[1]), batch)


class FrameKernels:
    """The compiled kernels of `kernels/frame_io.cu` on the current CUDA device."""

    def __init__(self) -> None:
        try:
            import cupy
        except ImportError as error:
            raise KernelBuildError(f"cupy is not importable ({error}): the CUDA kernels need it here") from None
        try:
            self.module = cupy.RawModule(code=SOURCE.read_text(), options=("-std=c++17",), name_expressions=KERNELS)
            self.functions = {name: self.module.get_function(name) for name in KERNELS}
        except Exception as error:  # no device, no driver, NVRTC refusal: all say the same to the caller
            raise KernelBuildError(f"cannot build the CUDA kernels here: {error}") from None
        self.cupy = cupy

    def to_network(self, frames: Any, multiple: int = 1, half: bool = False, stream: Any = None) -> Any:
        """uint8 BGR frames (N, H, W, 3) on the device (rows may be pitched) -> RGB (N, 3, Hp, Wp)."""
        cp = self.cupy
        frames = cp.asarray(frames)
        if frames.strides[2:] != (3, 1):  # pitched rows are fine, pixels must be packed BGR
            frames = cp.ascontiguousarray(frames)
        batch, height, width, _ = frames.shape
        out_h, out_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
        out = cp.empty((batch, 3, out_h, out_w), dtype=cp.float16 if half else cp.float32)
        name = "bgr8_to_nchw_f16" if half else "bgr8_to_nchw_f32"
        args = (frames, cp.int32(height), cp.int32(width), cp.int64(frames.strides[1]), cp.int64(frames.strides[0]),
                out, cp.int32(out_h), cp.int32(out_w))  # fmt: skip
        self._launch(name, _grid(out_w, out_h, batch), args, stream)
        return out

    def from_network(self, tensor: Any, height: int, width: int, stream: Any = None) -> Any:
        """RGB (N, 3, Hp, Wp) float32/float16 -> uint8 BGR frames (N, height, width, 3)."""
        cp = self.cupy
        tensor = cp.ascontiguousarray(cp.asarray(tensor))
        batch, _, in_h, in_w = tensor.shape
        out = cp.empty((batch, height, width, 3), dtype=cp.uint8)
        name = "nchw_to_bgr8_f16" if tensor.dtype == cp.float16 else "nchw_to_bgr8_f32"
        args = (tensor, cp.int32(in_h), cp.int32(in_w), out, cp.int32(height), cp.int32(width),
                cp.int64(out.strides[1]), cp.int64(out.strides[0]))  # fmt: skip
        self._launch(name, _grid(width, height, batch), args, stream)
        return out

    def nv12_to_network(self, luma: Any, chroma: Any, matrix: int = 601, full_range: bool = False,
                        multiple: int = 1, half: bool = False, stream: Any = None) -> Any:  # fmt: skip
        """NV12 planes (luma (N, H, W), chroma (N, H/2, W/2, 2); rows may be pitched) -> RGB (N, 3, Hp, Wp)."""
        cp = self.cupy
        luma, chroma = cp.asarray(luma), cp.asarray(chroma)
        batch, height, width = luma.shape
        out_h, out_w = -(-height // multiple) * multiple, -(-width // multiple) * multiple
        out = cp.empty((batch, 3, out_h, out_w), dtype=cp.float16 if half else cp.float32)
        name = "nv12_to_nchw_f16" if half else "nv12_to_nchw_f32"
        for index in range(batch):  # the two planes have different frame strides: one launch per frame
            args = (luma[index], cp.int64(luma.strides[1]), chroma[index], cp.int64(chroma.strides[1]),
                    cp.int32(height), cp.int32(width), cp.int64(0), cp.int32(matrix), cp.int32(int(full_range)),
                    out[index:index + 1], cp.int32(out_h), cp.int32(out_w))  # fmt: skip
            self._launch(name, _grid(out_w, out_h, 1), args, stream)
        return out

    def network_to_nv12(self, tensor: Any, height: int, width: int, matrix: int = 601, full_range: bool = False,
                        stream: Any = None) -> tuple[Any, Any]:  # fmt: skip
        """RGB (N, 3, Hp, Wp) -> NV12 planes (luma (N, H, W), chroma (N, H/2, W/2, 2)); H and W even."""
        cp = self.cupy
        tensor = cp.ascontiguousarray(cp.asarray(tensor))
        batch, _, in_h, in_w = tensor.shape
        luma = cp.empty((batch, height, width), dtype=cp.uint8)
        chroma = cp.empty((batch, height // 2, width // 2, 2), dtype=cp.uint8)
        for index in range(batch):  # the planes have different frame strides: one launch per frame
            args = (tensor[index:index + 1], cp.int32(in_h), cp.int32(in_w), luma[index], cp.int64(width),
                    chroma[index], cp.int64(width), cp.int32(height), cp.int32(width), cp.int64(0), cp.int32(matrix),
                    cp.int32(int(full_range)))  # fmt: skip
            name = "nchw_to_nv12_f16" if tensor.dtype == cp.float16 else "nchw_to_nv12_f32"
            self._launch(name, _grid(width // 2, height // 2, 1), args, stream)
        return luma, chroma

    def tiled(self, run: Any, frame: Any, tile: tuple[int, int], overlap: int, multiple: int = 1,
              stream: Any = None) -> Any:  # fmt: skip
        """`derain.frames.tiled` on the device: `run` maps a (1, h, w, 3) uint8 device tile to its restored tile."""
        from derain.frames import tile_origins

        cp = self.cupy
        frame = cp.asarray(frame)
        height, width = frame.shape[:2]
        total = cp.zeros((height, width, 3), cp.float32)
        weight = cp.zeros((height, width), cp.float32)
        for top in tile_origins(height, tile[0], overlap, multiple):
            for left in tile_origins(width, tile[1], overlap, multiple):
                rows, cols = min(tile[0], height - top), min(tile[1], width - left)
                window = cp.empty((rows, cols, 3), cp.uint8)
                self._launch("extract_tile", _grid(cols, rows, 1), (frame, cp.int32(height), cp.int32(width),
                             cp.int64(frame.strides[0]), cp.int32(top), cp.int32(left), window, cp.int32(rows),
                             cp.int32(cols)), stream)  # fmt: skip
                restored = cp.ascontiguousarray(cp.asarray(run(window[None]))[0])
                self._launch("blend_tile", _grid(cols, rows, 1), (restored, cp.int32(rows), cp.int32(cols),
                             cp.int32(top), cp.int32(left), cp.int32(overlap), total, weight, cp.int32(height),
                             cp.int32(width)), stream)  # fmt: skip
        out = cp.empty((height, width, 3), cp.uint8)
        self._launch("finish_blend", _grid(width, height, 1), (total, weight, out, cp.int32(height), cp.int32(width),
                     cp.int64(out.strides[0])), stream)  # fmt: skip
        return out

    def _launch(self, name: str, grid: tuple[int, int, int], args: tuple, stream: Any) -> None:
        kernel = self.functions[name]
        if stream is None:
            kernel(grid, BLOCK, args)
        else:
            with stream:
                kernel(grid, BLOCK, args)
