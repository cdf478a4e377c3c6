"""Custom CUDA kernels on the pixel path (camera frame -> network tensor -> frame), torch-free.

`kernels/frame_io.cu` holds them (every kernel `extern "C"`, one pass over memory each):
- `bgr8_to_nchw_{f32,f16}`: uint8 BGR frames with pitched rows -> RGB NCHW in [0, 1], edge-padded to the network's
  multiple (the frame contract, `derain.frames.to_network`);
- `nchw_to_bgr8_{f32,f16}`: back, cropped, clamped, rounded half to even (`derain.frames.from_network`);
- `nv12_to_nchw_{f32,f16}` / `nchw_to_nv12_{f32,f16}`: NV12 (decoders, Jetson cameras) in BT.601 / BT.709, full or
  limited range (`derain.cpp_ext.reference`);
- `extract_tile`, `blend_tile`, `finish_blend`: the contract's tiles with linear-ramp blending (`derain.frames.tiled`).

Three ways in: `build_fatbin` compiles them ahead of time with nvcc for the GPU table (`derain.gpus`);
`derain.cpp_ext.device.FrameKernels` compiles the same source with NVRTC (cupy) at first use on a GPU machine and
launches them on a stream; the references in `derain.cpp_ext.reference` are what every kernel is tested against.
"""

from __future__ import annotations

import shutil
import subprocess
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
    from derain.gpus import nvcc_gencode

    if shutil.which(nvcc) is None:
        raise KernelBuildError(f"{nvcc} not found: the CUDA toolkit is needed to build the kernels ahead of time")
    command = [nvcc, "-fatbin", "--Werror", "all-warnings", "-Xcompiler", "-Wall", "-O3", *nvcc_gencode(capabilities),
               "-o", str(out), str(SOURCE)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KernelBuildError(f"nvcc refused {SOURCE.name}: {(done.stderr or done.stdout).strip()[-2000:]}")
    return Path(out)
