"""cuda-python, one way for every caller (the TensorRT and ONNX Runtime backends, the pixel-path kernels, the engine
cards): its module layouts (13.x `cuda.bindings.*`, 12.x `cuda.*`), one unwrap of its `(error, value...)` results,
and waiting for the stream that produced a device array. Imported lazily: nothing here needs cuda-python until a
function is called.
"""

from __future__ import annotations

import importlib
from typing import Any

LAYOUTS = {"runtime": ("cuda.bindings.runtime", "cuda.cudart"), "driver": ("cuda.bindings.driver", "cuda.cuda"),
           "nvrtc": ("cuda.bindings.nvrtc", "cuda.nvrtc")}  # fmt: skip


class CudaError(RuntimeError):
    """A cuda-python call that failed (or cuda-python missing)."""


def _module(part: str, error: type[Exception]) -> Any:
    problems = []
    for name in LAYOUTS[part]:
        try:
            return importlib.import_module(name)
        except ImportError as problem:
            problems.append(str(problem))
    raise error(f"cuda-python is not importable ({problems[0]}): pip install cuda-python")


def runtime(error: type[Exception] = CudaError) -> Any:
    """The CUDA runtime bindings (`cudart`); `error` when cuda-python is missing."""
    return _module("runtime", error)


def driver(error: type[Exception] = CudaError) -> Any:
    """The CUDA driver API bindings."""
    return _module("driver", error)


def nvrtc(error: type[Exception] = CudaError) -> Any:
    """The NVRTC bindings."""
    return _module("nvrtc", error)


def check(result: Any, what: str = "", error: type[Exception] = CudaError) -> Any:
    """Unwrap a cuda-python call's `(error, value...)` result: the value (a tuple of them, None for none), or `error`
    naming the CUDA error (runtime, driver and NVRTC success codes are all 0)."""
    code, *values = result if isinstance(result, tuple) else (result,)
    if int(code) != 0:
        name = getattr(code, "name", str(code))
        raise error(f"{what + ': ' if what else ''}CUDA error {name}")
    return values[0] if len(values) == 1 else (tuple(values) or None)


def wait_for_stream(stream: int | None, error: type[Exception] = CudaError) -> None:
    """Block until `stream` (a producer's, e.g. from `__cuda_array_interface__`) has finished its work; None: no
    stream to wait for."""
    if stream is not None:
        check(runtime(error).cudaStreamSynchronize(stream), "waiting for the producer's stream", error)


def compute_capability(device: int = 0) -> int | None:
    """The compute capability of CUDA device `device` as an int (86 for 8.6), or None without cuda-python or a GPU."""
    try:
        cudart = runtime()
    except CudaError:
        return None
    code, count = cudart.cudaGetDeviceCount()
    if int(code) != 0 or count <= device:
        return None
    code, props = cudart.cudaGetDeviceProperties(device)
    return None if int(code) != 0 else props.major * 10 + props.minor
