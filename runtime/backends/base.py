"""The backend protocol: an artifact loaded once, frames in, frames out.

A backend takes uint8 BGR frames (N, H, W, 3) and returns the de-rained frames in the same form, following the frame
contract of `derain.frames` whatever its graph takes inside. Frames on the host (numpy) come back on the host;
frames on the device (a torch CUDA tensor, or any object with `__cuda_array_interface__`) come back on the
device where the backend supports it (`InputSpec.device_frames`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from derain.cli import InputError

log = logging.getLogger(__name__)


class BackendError(InputError, RuntimeError):
    """An artifact cannot be loaded or run here: wrong kind of file, not a de-rainer, library missing, wrong GPU."""


@dataclass(frozen=True)
class InputSpec:
    """What a loaded backend accepts.

    Attributes:
        multiple: H and W of the network tensor are padded to multiples of this.
        min_size, max_size: the frame sizes (H, W) the artifact takes; max_size None = up to MAX_SIDE.
        fixed_sizes: the sizes of a static engine or graph (frames are padded up to one, or tiled beyond the
            largest); empty for dynamic artifacts.
        max_batch: frames per call.
        precision: "fp32", "fp16", "int8", "fp8" (what the artifact computes in).
        device: where the network runs ("cpu", "cuda:0").
        device_frames: whether device arrays are taken and returned without a host copy.
        context: the network's receptive-field radius in pixels (from the artifact's metadata; None: not recorded),
            which tiles of larger frames keep around each pixel.
        temporal: the network takes its past (the previous frame and output) beside each frame
            (`derain.models.temporal`): `run(frames, previous)`; the `Derainer` carries that state per stream.
    """

    multiple: int = 1
    min_size: tuple[int, int] = (8, 8)
    max_size: tuple[int, int] | None = None
    fixed_sizes: tuple[tuple[int, int], ...] = ()
    max_batch: int = 1
    precision: str = "fp32"
    device: str = "cpu"
    device_frames: bool = False
    context: int | None = None
    temporal: bool = False

    def fitting_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The size a (height, width) frame runs at: itself (padded up to the minimum) for dynamic artifacts, the
        smallest fixed size that holds it for static ones, None when it must be tiled."""
        if self.fixed_sizes:
            holding = [s for s in self.fixed_sizes if s[0] >= height and s[1] >= width]
            return min(holding, key=lambda s: s[0] * s[1]) if holding else None
        if self.max_size is not None and (height > self.max_size[0] or width > self.max_size[1]):
            return None
        return max(height, self.min_size[0]), max(width, self.min_size[1])  # below a profile's minimum: pad up

    def largest(self) -> tuple[int, int] | None:
        """The largest frame the artifact takes in one piece (the tile size for larger frames)."""
        if self.fixed_sizes:
            return max(self.fixed_sizes, key=lambda s: s[0] * s[1])
        return self.max_size


@dataclass
class DeviceFrames:
    """A uint8 (N, H, W, 3) array in device memory, exposed through `__cuda_array_interface__` (zero-copy into
    torch with `torch.as_tensor(x, device="cuda")`, or cupy with `cupy.asarray(x)`)."""

    pointer: int
    shape: tuple[int, ...]
    strides: tuple[int, ...] | None = None

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": "|u1", "data": (self.pointer, False), "version": 3,
                "strides": self.strides}  # fmt: skip


class Backend:
    """One loaded artifact. Subclasses set `name`, `suffixes` and implement `load`, `spec`, `run` and `clone`.

    Use as a context manager, or call `close()`; `clone()` gives an instance for another thread that shares the
    loaded weights where the library allows (one execution context, stream and buffers per thread).
    """

    name = "backend"
    suffixes: tuple[str, ...] = ()

    def __init__(self, path: Path, spec: InputSpec) -> None:
        self.path = Path(path)
        self.spec = spec
        self.closed = False

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", **options: Any) -> Backend:
        raise NotImplementedError

    def run(self, frames: Any, previous: tuple[Any, Any] | None = None) -> Any:
        """uint8 BGR (N, H, W, 3) of a size the artifact takes -> uint8 BGR (N, H, W, 3). A temporal artifact
        (`spec.temporal`) also takes `previous`: (previous frames, previous outputs) of the same shape (None: no
        past, the frames themselves)."""
        raise NotImplementedError

    def clone(self) -> Backend:
        raise NotImplementedError

    def warmup(self, size: tuple[int, int], iterations: int = 2) -> None:
        """Run blank frames at `size` so compilation, allocation and graph capture happen before live frames."""
        import numpy as np

        blank = np.zeros((1, *size, 3), np.uint8)
        for _ in range(iterations):
            self.run(blank)

    def __call__(self, frames: Any, previous: tuple[Any, Any] | None = None) -> Any:
        if self.closed:
            raise BackendError(f"{self.name} backend for {self.path.name} is closed")
        if previous is not None and not self.spec.temporal:
            raise BackendError(f"{self.path.name} is a per-frame de-rainer: it takes no previous frames")
        return self.run(frames, previous) if self.spec.temporal else self.run(frames)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        """What is loaded, for logs and benchmark records."""
        return {"backend": self.name, "artifact": str(self.path), "precision": self.spec.precision,
                "device": self.spec.device}  # fmt: skip


def default_cpu_threads() -> int:
    """Intra-op threads for CPU inference beside other work (ONNX Runtime's default here, per session; derain-stream's
    for every backend; torch's thread count is process-wide, so the PyTorch backend sets it only when asked): the
    cores this process may use, less one for the stream's capture, decoding and encoding and whatever else runs
    beside it (at least one). On a 2-core machine with
    one other busy process, 1 thread gives 217 / 224 ms p50 / p90 per 640x480 frame where 2 give 357 / 467 (PyTorch;
    ONNX Runtime 161 / 165 against 199 / 232); idle, 2 threads are 1.7x faster (benchmarks/results/cpu_threads.md):
    bounded latency comes first."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1)


KERNEL_CHOICES = ("auto", "on", "off")


def check_kernel_choice(choice: str) -> None:
    """Before anything is loaded: `kernels` must be one of KERNEL_CHOICES."""
    if choice not in KERNEL_CHOICES:
        raise BackendError(f"kernels must be one of {KERNEL_CHOICES}, got {choice!r}")


def frame_kernels(choice: str, device: int | None, who: str, reference: str) -> Any:
    """The fused pixel-path kernels of `derain.cpp_ext` on CUDA device `device` (None: no GPU) when asked for and
    loadable; None (the backend's `reference` path) otherwise. Logs which path `who` (a backend's name) takes and why;
    `choice="on"` turns "unavailable" into a BackendError."""
    from derain.cpp_ext import KernelBuildError

    check_kernel_choice(choice)
    if choice == "off" or device is None:
        if choice == "on":
            raise BackendError(f"kernels='on' needs a CUDA device; the {who} backend runs on the CPU")
        why = "kernels='off'" if choice == "off" else "no CUDA device"
        log.info("%s: pixel path = %s (%s)", who, reference, why)
        return None
    try:
        from derain.cpp_ext.device import FrameKernels

        kernels = FrameKernels.shared(device)
    except KernelBuildError as error:
        if choice == "on":
            raise BackendError(f"kernels='on': {error}") from None
        log.info("%s: pixel path = %s (the fused kernels are unavailable: %s)", who, reference, error)
        return None
    log.info("%s: pixel path = fused CUDA kernels (derain.cpp_ext)", who)
    return kernels


def check_fused(who: str, choice: str, reference: Any, fused: Any, size: tuple[int, int]) -> bool:
    """One random frame of `size` through `reference` and `fused` (frames -> frames callables of one backend): the
    pixels must agree (the kernels are bit-exact to the frame contract; a pixel in a thousand may move by one
    level where the network itself is not deterministic). Returns whether the fused path may be used; "on" turns a
    disagreement into a BackendError, "auto" into a logged fallback."""
    import numpy as np

    frame = np.random.default_rng(0).integers(0, 256, (1, *size, 3), dtype=np.uint8)
    expected = reference(frame)
    try:
        difference = np.abs(np.asarray(fused(frame)).astype(np.int16) - expected)
        allowed = max(1, int(1e-3 * difference.size))
        problem = (None if difference.max() <= 1 and np.count_nonzero(difference) <= allowed else
                   f"{np.mean(difference > 0):.2%} of the pixels differ, by up to {difference.max()}")  # fmt: skip
    except Exception as error:  # noqa: BLE001 - any failure of the fused path means: do not use it
        problem = f"{type(error).__name__}: {error}"
    if problem is None:
        log.info("%s: fused kernels agree with the reference path at %dx%d", who, size[1], size[0])
        return True
    if choice == "on":
        raise BackendError(f"kernels='on': the fused kernels disagree with the reference path: {problem}")
    try:  # a kernel that faulted leaves the CUDA context unusable: say so instead of a fallback that cannot work
        reference(frame)
    except Exception as error:  # noqa: BLE001
        raise BackendError(f"the fused kernels failed ({problem}) and left CUDA unusable ({error}); load again with "
                           "kernels='off'") from None  # fmt: skip
    log.warning("%s: pixel path = reference (the fused kernels disagree with it: %s)", who, problem)
    return False
