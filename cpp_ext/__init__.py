"""Custom CUDA kernels on the pixel path (camera frame -> network tensor -> frame), torch-free.

`kernels/frame_io.cu` holds them (every kernel `extern "C"`, one pass over memory each):
- `bgr8_to_nchw_{f32,f16}`: uint8 BGR frames with pitched rows -> RGB NCHW in [0, 1], edge-padded to the network's
  multiple (the frame contract, `derain.frames.to_network`);
- `nchw_to_bgr8_{f32,f16}`: back, cropped, clamped, rounded half to even (`derain.frames.from_network`);
- `nv12_to_nchw_{f32,f16}` / `nchw_to_nv12_{f32,f16}`: NV12 (decoders, Jetson cameras) in BT.601 / BT.709, full or
  limited range (`derain.cpp_ext.reference`);
- `extract_tile`, `blend_tile`, `finish_blend`: the contract's tiles with linear-ramp blending (`derain.frames.tiled`).

The source has no includes, so it compiles as it is with nvcc and with NVRTC. Ways in:
- `build_fatbin` compiles it ahead of time with nvcc for the GPU table (`derain.gpus`); `DERAIN_BUILD_KERNELS=1
  pip install .` does so at install (`setup.py`, through the import-free `aot.py`) and ships `frame_io.fatbin`;
- `derain.cpp_ext.device.FrameKernels` loads that fatbin, or compiles the source with NVRTC for this GPU at first
  use (cuda-python, cached on disk by GPU and source hash), and launches the kernels on a caller's stream, torch-
  and cupy-free: the PyTorch backend (on torch's stream, inside its CUDA graph) and the TensorRT backend (on its
  stream, around the engine) both use it;
- inside a TensorRT engine: see `benchmarks/plugin_probe.py` (a float plugin builds, uint8 frame plugins are
  refused by TensorRT-RTX 1.7).
The references in `derain.cpp_ext.reference` (and the frame contract, `derain.frames`) are what every kernel is
tested against.
"""

from __future__ import annotations

from pathlib import Path

from derain.cli import InputError

SOURCE = Path(__file__).parent / "kernels" / "frame_io.cu"
KERNELS = (
    "bgr8_to_nchw_f32", "bgr8_to_nchw_f16", "nchw_to_bgr8_f32", "nchw_to_bgr8_f16",
    "nv12_to_nchw_f32", "nv12_to_nchw_f16", "nchw_to_nv12_f32", "nchw_to_nv12_f16",
    "extract_tile", "blend_tile", "finish_blend",
)  # fmt: skip


class KernelBuildError(InputError, RuntimeError):
    """The CUDA kernels cannot be compiled here (no nvcc, or the compiler refused them)."""


def build_fatbin(out: str | Path, capabilities: tuple[int, ...] | None = None, nvcc: str = "nvcc") -> Path:
    """Compile `frame_io.cu` into one fatbin: SASS for each compute capability (default: the whole GPU table) and
    PTX for the newest; warnings are errors. Returns `out`."""
    from derain.cpp_ext.aot import nvcc_fatbin
    from derain.gpus import nvcc_gencode

    refused = nvcc_fatbin(SOURCE, Path(out), nvcc_gencode(capabilities), nvcc)
    if refused:
        raise KernelBuildError(refused)
    return Path(out)
