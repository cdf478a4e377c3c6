"""PyTorch backend: `.pt` checkpoints written by `derain-train`, on CPU or CUDA.

The network runs inside `derain.models.frame_io.FrameIO`, the same module the ONNX frame graph is traced from, so
PyTorch and ONNX give the same pixels. On CUDA: FP16, channels_last and one CUDA graph per frame shape (captured at
the first frame of that shape, replayed after); `torch.compile` on request (measure it: `benchmarks/latency.py`).
Device frames (a CUDA torch tensor, or any `__cuda_array_interface__` array) are taken without a host copy and
the result is returned as a CUDA torch tensor.

Pixel path (`kernels`): on CUDA, with `derain.cpp_ext`'s kernels loadable (cuda-python; NVRTC or the install's
fatbin), the frame -> tensor and tensor -> frame conversions run as one fused kernel each on torch's stream, and the
CUDA graph of a frame shape holds both kernels and the network (one replay a frame); otherwise they are the torch
ops of `FrameIO`. Both follow the one frame contract (`derain.frames`), so the pixels are the same;
`describe()["pixel_path"]` and the log say which ran. `kernels="on"` refuses to load without them, `"off"` never
uses them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from derain.frames import as_batch, frame_size, padded_size
from derain.runtime.backends.base import (
    Backend,
    BackendError,
    InputSpec,
    check_fused,
    check_kernel_choice,
    frame_kernels,
)

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")

MAX_GRAPHS = 8  # CUDA graphs kept (one per frame shape, each with its memory pool); the oldest goes first


class _CapturedShape:
    """One CUDA graph of the whole frame -> frame module at one input shape, with its static buffers."""

    def __init__(self, module: Any, example: Any) -> None:
        import torch

        self.input = example.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.inference_mode():
            for _ in range(3):  # warm-up outside the graph: cuDNN picks algorithms, allocator settles
                module(self.input)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.inference_mode():
            self.output = module(self.input)

    def __call__(self, frames: Any) -> Any:
        self.input.copy_(frames)
        self.graph.replay()
        return self.output


class _FusedFrames:
    """uint8 BGR frames on the device -> fused kernel -> network -> fused kernel -> uint8 BGR frames, every launch on
    torch's current stream, so a CUDA graph captured around a call holds all three."""

    def __init__(self, network: Any, kernels: Any, multiple: int, dtype: Any) -> None:
        self.network, self.kernels, self.multiple, self.dtype = network, kernels, multiple, dtype
        self.channels_last = bool(getattr(network, "channels_last", False))

    def __call__(self, frames: Any) -> Any:
        import torch

        batch, height, width = frames.shape[:3]
        frames = frames if frames.stride()[2:] == (3, 1) else frames.contiguous()  # pitched rows are fine
        stream = torch.cuda.current_stream(frames.device).cuda_stream
        size = padded_size(height, width, self.multiple)
        image = torch.empty((batch, 3, *size), dtype=self.dtype, device=frames.device)
        self.kernels.to_network(frames, image, stream)
        restored = self.network(image).contiguous()
        out = torch.empty((batch, height, width, 3), dtype=torch.uint8, device=frames.device)
        self.kernels.from_network(restored, out, stream)
        return out


class TorchBackend(Backend):
    """A checkpoint's network behind the frame contract."""

    name = "pytorch"
    suffixes = (".pt", ".pth")

    def __init__(self, path: Path, spec: InputSpec, module: Any, cuda_graphs: bool, kernels: Any = None) -> None:
        super().__init__(path, spec)
        self.module = module
        self.cuda_graphs = cuda_graphs
        self.kernels = kernels  # derain.cpp_ext.device.FrameKernels, or None: the torch ops of FrameIO
        self.graphs: OrderedDict[tuple[int, ...], _CapturedShape] = OrderedDict()

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "auto",
        precision: str = "fp32",
        channels_last: bool | None = None,
        cuda_graphs: bool | None = None,
        compile: bool = False,
        threads: int | None = None,
        kernels: str = "auto",
        **options: Any,
    ) -> TorchBackend:
        """Args:
        device: "cpu", "cuda", "cuda:N" or "auto".
        precision: "fp32" or "fp16" (CUDA only).
        channels_last, cuda_graphs: default on with CUDA, off on CPU.
        compile: wrap the frame module in `torch.compile`.
        threads: torch CPU threads, a process-wide torch setting (default: leave torch's; on a CPU shared with
            other work `default_cpu_threads()` bounds latency, benchmarks/results/cpu_threads.md).
        kernels: "auto" (the fused CUDA kernels when they build here), "on" (required) or "off" (torch ops).
        """
        try:
            import torch

            from derain.models import CheckpointError, load_model
            from derain.models.frame_io import FrameIO, NetworkOnly, TemporalFrameIO, is_temporal
            from derain.models.padding import pad_multiple
        except ImportError as error:
            raise BackendError(f"loading {path} needs torch ({error})") from None
        if precision not in PRECISIONS:
            raise BackendError(f"PyTorch precision must be one of {PRECISIONS}, got {precision!r}")
        check_kernel_choice(kernels)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(f"device {device!r} asked for, but torch sees no CUDA device")
        on_cuda = device.startswith("cuda")
        if precision == "fp16" and not on_cuda:
            raise BackendError("FP16 needs CUDA in the PyTorch backend; on a CPU use fp32, the fastest precision there "
                               "(FP16 and INT8 ONNX graphs run slower than FP32 on CPUs: benchmarks/results/"
                               "latency_cpu2.md)")  # fmt: skip
        if threads:  # process-wide in torch: set only when asked (derain-stream asks for default_cpu_threads())
            torch.set_num_threads(int(threads))
        try:
            network = load_model(path, map_location=device)
        except CheckpointError as error:
            raise BackendError(str(error)) from None
        dtype = torch.float16 if precision == "fp16" else torch.float32
        channels_last = on_cuda if channels_last is None else channels_last
        if channels_last:
            network = network.to(memory_format=torch.channels_last)
        network = network.to(dtype)
        temporal = is_temporal(network)
        plain = (TemporalFrameIO if temporal else FrameIO)(network, pad_multiple(network), dtype, channels_last).eval()
        module: Any = torch.compile(plain, dynamic=False) if compile else plain
        spec = InputSpec(multiple=pad_multiple(network), max_batch=64, precision=precision,
                         device=str(torch.device(device)), device_frames=on_cuda, temporal=temporal)  # fmt: skip
        log.info("pytorch: %s (%s) on %s", Path(path).name, network.spec["name"], spec.device)
        graphs = on_cuda if cuda_graphs is None else (cuda_graphs and on_cuda)
        if temporal:  # three frames in: the fused kernels and CUDA graphs serve per-frame networks only (for now)
            return cls(Path(path), spec, module, False, None)
        index = torch.device(device).index if on_cuda else None
        index = torch.cuda.current_device() if on_cuda and index is None else index
        fused = frame_kernels(kernels, index, "pytorch", "torch ops")
        if fused is not None:  # the kernels convert the frames around the network (and torch.compile sees it alone)
            alone: Any = NetworkOnly(network, channels_last).eval()  # the layout change is inside the CUDA graph
            reference, candidate = (cls(Path(path), spec, m, False) for m in
                                    (plain, _FusedFrames(alone, fused, pad_multiple(network), dtype)))  # fmt: skip
            if check_fused("pytorch", kernels, reference.run, candidate.run, (240, 320)):
                alone = torch.compile(alone, dynamic=False) if compile else alone
                return cls(Path(path), spec, _FusedFrames(alone, fused, pad_multiple(network), dtype), graphs, fused)
            fused = None
        return cls(Path(path), spec, module, graphs, fused)

    def _tensor(self, frames: Any) -> tuple[Any, bool, bool]:
        """frames -> (uint8 (N, H, W, 3) tensor on the device, single frame, came from the device)."""
        import torch

        on_device = isinstance(frames, torch.Tensor) or hasattr(frames, "__cuda_array_interface__")
        if on_device:
            frame_size(frames)
            tensor = torch.as_tensor(frames, device=self.spec.device)
            single = tensor.ndim == 3
            return (tensor[None] if single else tensor), single, True
        batch, single = as_batch(np.asarray(frames))
        return torch.from_numpy(np.ascontiguousarray(batch)).to(self.spec.device, non_blocking=True), single, False

    def run(self, frames: Any, previous: tuple[Any, Any] | None = None) -> Any:
        import torch

        tensor, single, on_device = self._tensor(frames)
        if self.spec.temporal:
            before, made = (tensor, tensor) if previous is None else (self._tensor(x)[0] for x in previous)
            if before.shape != tensor.shape or made.shape != tensor.shape:
                raise BackendError(f"previous frames {tuple(before.shape)} / outputs {tuple(made.shape)} do not "
                                   f"match the frames {tuple(tensor.shape)}")  # fmt: skip
            with torch.inference_mode():
                out = self.module(tensor, before, made)
        elif self.cuda_graphs:
            key = tuple(tensor.shape)
            if key not in self.graphs:
                log.info("pytorch: capturing a CUDA graph for frames %s", "x".join(map(str, key[1:3])))
                if len(self.graphs) >= MAX_GRAPHS:
                    self.graphs.popitem(last=False)
                self.graphs[key] = _CapturedShape(self.module, tensor)
            self.graphs.move_to_end(key)
            out = self.graphs[key](tensor)
            out = out.clone() if on_device else out
        else:
            with torch.inference_mode():
                out = self.module(tensor)
        out = out[0] if single else out
        return out if on_device else out.cpu().numpy()

    def clone(self) -> TorchBackend:
        """Shares the network and kernels; CUDA graphs (and their static buffers) are per clone."""
        return TorchBackend(self.path, self.spec, self.module, self.cuda_graphs, self.kernels)

    def close(self) -> None:
        super().close()
        self.graphs.clear()

    def describe(self) -> dict[str, Any]:
        import torch

        pixel_path = "fused CUDA kernels (derain.cpp_ext)" if self.kernels is not None else "torch ops"
        return {
            **super().describe(),
            "library": f"torch {torch.__version__}",
            "cuda_graphs": self.cuda_graphs,
            "channels_last": bool(getattr(self.module, "channels_last", False)),
            "pixel_path": pixel_path,
        }
