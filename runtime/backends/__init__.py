"""Backends by artifact: `.engine`/`.plan` -> TensorRT, `.onnx` -> ONNX Runtime, `.pt` -> PyTorch.

Each backend module imports its library (tensorrt / onnxruntime / torch) only when an artifact is loaded, so this
package imports with numpy alone. `open_backend(path)` picks the backend from the file suffix, or by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from derain.registry import Registry
from derain.runtime.backends.base import Backend, BackendError, DeviceFrames, InputSpec
from derain.runtime.backends.onnx_graph import OnnxBackend
from derain.runtime.backends.pytorch import TorchBackend
from derain.runtime.backends.tensorrt_engine import TensorRTBackend

BACKENDS: Registry[type[Backend]] = Registry("backend")
for _backend in (TensorRTBackend, OnnxBackend, TorchBackend):
    BACKENDS.add(_backend.name, _backend)

SUFFIXES = {suffix: BACKENDS.get(name).name for name in BACKENDS for suffix in BACKENDS.get(name).suffixes}


def backend_for(path: str | Path) -> type[Backend]:
    """The backend class for an artifact, by its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        known = ", ".join(f"{s} ({n})" for s, n in sorted(SUFFIXES.items()))
        raise BackendError(f"no backend for {Path(path).name!r}: known artifacts are {known}")
    return BACKENDS.get(SUFFIXES[suffix])


def open_backend(path: str | Path, backend: str | None = None, device: str = "auto", **options: Any) -> Backend:
    """Load an artifact with the backend its suffix names (or `backend` by name); `options` go to its `load`."""
    cls = BACKENDS.get(backend) if backend else backend_for(path)
    if not Path(path).exists():
        raise BackendError(f"model not found: {path}")
    return cls.load(path, device=device, **options)


__all__ = ["BACKENDS", "Backend", "BackendError", "DeviceFrames", "InputSpec", "backend_for", "open_backend"]
