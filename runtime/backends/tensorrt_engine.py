"""TensorRT backend: `.engine` / `.plan` files built by `derain-export`, with `tensorrt` or `tensorrt_rtx`.

- The engine card is checked first (`derain.runtime.card.can_run`): an engine for another GPU or library version
  gets a clear error before any deserialization.
- Tensor names, dtypes and profiles are read from the engine; device buffers are allocated once at the largest
  profile shape, host staging buffers are pinned; each backend instance (and each `clone()`) has its own
  execution context and CUDA stream, and runs `set_tensor_address` + `execute_async_v3` on it.
- Pixel path of float-tensor engines (`kernels`): with `derain.cpp_ext`'s kernels loadable (cuda-python, NVRTC or
  the install's fatbin), the uint8 frame goes to the GPU as it is (3 bytes a pixel, not 12 or 6) and one fused
  kernel each converts it into the engine's input and the engine's output back into a uint8 frame, on the
  backend's stream; otherwise the host NumPy contract (`derain.frames`) converts on the CPU. At load, one random
  frame runs both ways and must give the same pixels, else "auto" falls back to the host path (logged) and "on"
  refuses. uint8 frame engines convert inside the engine with TensorRT's own layers and need neither.
- Device frames (`__cuda_array_interface__`, e.g. a torch or cupy array): uint8 frame engines copy them
  device-to-device into the input buffer; float engines read them with the fused kernel (rows may be pitched).
  The result is returned as a `DeviceFrames` view of a backend buffer (valid until the next call).
- TensorRT-RTX: a runtime config whose runtime cache is persisted beside the engine (`<engine>.rtcache`), the
  whole-graph CUDA graph strategy, and the JIT compilation done at load by a warm-up with a log line, never on a
  live frame. Classic TensorRT: one CUDA graph captured per input shape after a warm-up run.

CUDA through cuda-python (`cuda.bindings.runtime`), not pycuda.
"""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from derain import cuda_python
from derain.cpp_ext.device import DeviceArray
from derain.frames import as_batch, frame_size, from_network, pad_frames, to_network
from derain.runtime.backends.base import (
    Backend,
    BackendError,
    DeviceFrames,
    InputSpec,
    check_fused,
    check_kernel_choice,
    frame_kernels,
)
from derain.runtime.card import can_run, current_compute_capability, read_card

log = logging.getLogger(__name__)


def _cudart() -> Any:
    return cuda_python.runtime(BackendError)


def _check(result: Any) -> Any:
    """`derain.cuda_python.check`, failing with a BackendError."""
    return cuda_python.check(result, error=BackendError)


class _Buffer:
    """Device memory of `nbytes` plus a pinned host mirror viewed as numpy."""

    def __init__(self, nbytes: int, dtype: np.dtype) -> None:
        cudart = _cudart()
        self.nbytes = nbytes
        self.device = int(_check(cudart.cudaMalloc(nbytes)))
        self.host_pointer = int(_check(cudart.cudaMallocHost(nbytes)))
        raw = (ctypes.c_uint8 * nbytes).from_address(self.host_pointer)
        self.host = np.frombuffer(raw, dtype=np.uint8).view(dtype)

    def free(self) -> None:
        cudart = _cudart()
        cudart.cudaFree(self.device)
        cudart.cudaFreeHost(self.host_pointer)


def _wait_for_producer(interface: dict[str, Any]) -> None:
    """Wait for the stream the device frames were written on: `__cuda_array_interface__` v3 names it; without the
    key (torch exports v2) the legacy default stream, where torch writes unless told otherwise."""
    cuda_python.wait_for_stream(interface.get("stream", 1), BackendError)


def _logger(trt: Any) -> Any:
    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, message: str) -> None:
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                log.error("%s", message)
            elif int(severity) <= int(trt.ILogger.Severity.WARNING):
                log.debug("%s", message)

    return Logger()


@dataclass
class _Engine:
    """What clones share: the library, the deserialized engine, its I/O description and the RTX runtime config."""

    trt: Any
    engine: Any
    logger: Any
    input_name: str
    output_name: str
    input_dtype: np.dtype
    output_dtype: np.dtype
    layout: str  # "frame" (uint8 NHWC) or "tensor" (float NCHW)
    profiles: list[tuple[tuple[int, ...], tuple[int, ...]]]  # (minimum, maximum) input shape of each profile
    rtx: bool
    runtime_config: Any = None
    cache_path: Path | None = None
    kernels: Any = None  # derain.cpp_ext.device.FrameKernels around a float engine, or None: the host NumPy path


def cardless(path: Path) -> dict[str, Any]:
    """What a card would say of an engine built without derain-export (trtexec): the TensorRT library installed
    here deserializes it (TensorRT first, then TensorRT-RTX), its precision and pad multiple are read from the
    engine when it loads; a warning says so once."""
    for library in ("tensorrt", "tensorrt_rtx"):
        try:
            module = importlib.import_module(library)
        except ImportError:
            continue
        log.warning("%s has no engine card (built with trtexec?): reading its tensors from the engine itself with "
                    "%s %s; the GPU and version checks are left to the library", path.name, library,
                    getattr(module, "__version__", "?"))  # fmt: skip
        return {"builder": {"library": library, "version": getattr(module, "__version__", "?"),
                            "rtx": library == "tensorrt_rtx"}, "cardless": True}  # fmt: skip
    raise BackendError(f"{path.name} is a TensorRT engine, and neither tensorrt nor tensorrt_rtx is installed here")


def _load_engine(path: Path, runtime_cache: bool, card: dict[str, Any]) -> _Engine:
    if not card.get("cardless"):
        verdict = can_run(path)
        if not verdict:
            raise BackendError(verdict.reason)
    elif current_compute_capability() is None:
        raise BackendError(f"{path.name} is a TensorRT engine: it needs a CUDA GPU and none is visible here")
    trt = importlib.import_module(card["builder"]["library"])
    logger = _logger(trt)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(path.read_bytes())
    if engine is None:
        raise BackendError(f"{card['builder']['library']} could not deserialize {path.name} (see the errors above)")
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
    if len(inputs) == 3 and len(outputs) == 1:
        raise BackendError(f"{path.name} is a temporal de-rainer's engine (inputs {inputs}); this runtime runs "
                           "temporal networks from their ONNX graph or checkpoint, not yet from engines")  # fmt: skip
    if len(inputs) != 1 or len(outputs) != 1:
        raise BackendError(f"{path.name} is not a de-raining engine: inputs {inputs}, outputs {outputs}")
    input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(inputs[0])))
    output_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(outputs[0])))
    layout = "frame" if input_dtype == np.uint8 else "tensor"
    profiles = []
    for index in range(engine.num_optimization_profiles):
        minimum, _, maximum = engine.get_tensor_profile_shape(inputs[0], index)
        profiles.append((tuple(minimum), tuple(maximum)))
    rtx = hasattr(trt, "ComputeCapability")
    loaded = _Engine(trt, engine, logger, inputs[0], outputs[0], input_dtype, output_dtype, layout, profiles, rtx)
    if rtx:
        config = engine.create_runtime_config()
        config.cuda_graph_strategy = trt.CudaGraphStrategy.WHOLE_GRAPH_CAPTURE
        if runtime_cache:
            loaded.cache_path = path.with_suffix(".rtcache")
            cache = config.create_runtime_cache()
            if loaded.cache_path.is_file():
                cache.deserialize(loaded.cache_path.read_bytes())
            config.set_runtime_cache(cache)
        loaded.runtime_config = config
    return loaded


def _profile_multiple(loaded: _Engine) -> int:
    """A card-less engine's pad multiple: static profiles take any frame padded into them (1); a dynamic profile's
    bounds are multiples of the network's (the largest power of two up to 32 dividing both, at least 8: the
    shipped networks')."""
    axes = (1, 2) if loaded.layout == "frame" else (2, 3)
    bounds = [side for low, high in loaded.profiles if low != high for shape in (low, high) for side in
              (shape[axes[0]], shape[axes[1]])]  # fmt: skip
    if not bounds:
        return 1
    multiple = 32
    while multiple > 8 and any(side % multiple for side in bounds):
        multiple //= 2
    return multiple


def _save_runtime_cache(loaded: _Engine) -> None:
    if loaded.cache_path is None:
        return
    blob = bytes(loaded.runtime_config.get_runtime_cache().serialize())
    fd, tmp = tempfile.mkstemp(dir=loaded.cache_path.parent, prefix=loaded.cache_path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(blob)
    os.replace(tmp, loaded.cache_path)


def _spec(loaded: _Engine, card: dict[str, Any], device: int) -> InputSpec:
    """What the engine takes, from its own profiles (static ones are fixed sizes, a dynamic one is a range)."""
    spatial = (lambda s: (s[1], s[2])) if loaded.layout == "frame" else (lambda s: (s[2], s[3]))  # noqa: E731
    fixed = tuple(spatial(high) for low, high in loaded.profiles if low == high)
    dynamic = [(low, high) for low, high in loaded.profiles if low != high]
    return InputSpec(
        multiple=int(card.get("pad_multiple", 1)),
        min_size=spatial(dynamic[0][0]) if dynamic else (8, 8),
        max_size=spatial(dynamic[0][1]) if dynamic else None,
        fixed_sizes=() if dynamic else fixed,
        max_batch=min(high[0] for _, high in loaded.profiles),
        precision=str(card.get("precision", "fp32")),
        device=f"cuda:{device}",
        device_frames=True,
        context=int(card["context"]) if isinstance(card.get("context"), int) else None,
    )


class TensorRTBackend(Backend):
    """One execution context, stream and buffer set over a shared engine."""

    name = "tensorrt"
    suffixes = (".engine", ".plan")

    def __init__(self, path: Path, spec: InputSpec, loaded: _Engine) -> None:
        super().__init__(path, spec)
        cudart = _cudart()
        self.loaded = loaded
        self.multiple = spec.multiple
        self.device = int(spec.device.split(":")[1])
        _check(cudart.cudaSetDevice(self.device))
        self.stream = int(_check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking)))
        engine = loaded.engine
        self.context = (
            engine.create_execution_context(loaded.runtime_config) if loaded.rtx else engine.create_execution_context()
        )
        if self.context is None:
            raise BackendError(f"cannot create an execution context for {path.name} (out of GPU memory?)")
        self.profile = 0
        count = max(int(np.prod(high)) for _, high in loaded.profiles)  # the output has the input's shape
        self.input = _Buffer(count * loaded.input_dtype.itemsize, loaded.input_dtype)
        self.output = _Buffer(count * loaded.output_dtype.itemsize, loaded.output_dtype)
        self.context.set_tensor_address(loaded.input_name, self.input.device)
        self.context.set_tensor_address(loaded.output_name, self.output.device)
        self.frames_in = self.frames_out = None  # uint8 frames on the device, for the fused kernels
        if loaded.layout == "tensor" and loaded.kernels is not None:
            frame_bytes = max(high[0] * high[2] * high[3] * 3 for _, high in loaded.profiles)
            self.frames_in = _Buffer(frame_bytes, np.dtype(np.uint8))
            self.frames_out = _Buffer(frame_bytes, np.dtype(np.uint8))
        self.graphs: dict[tuple[int, ...], Any] = {}  # classic TensorRT: input shape -> instantiated CUDA graph

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", runtime_cache: bool = True, kernels: str = "auto",
             **options: Any):  # fmt: skip
        """Args:
        device: "auto" or "cuda" / "cuda:0" (engines run on the GPU they were built for).
        runtime_cache: TensorRT-RTX only: keep the JIT's runtime cache in `<engine>.rtcache` across runs.
        kernels: float engines: "auto" (the fused CUDA kernels when they load and pass the check at load), "on"
            (required) or "off" (host NumPy conversions).
        """
        check_kernel_choice(kernels)
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"engine not found: {path}")
        if device == "cpu":
            raise BackendError(f"{path.name} is a TensorRT engine: it runs on a GPU, not on device 'cpu'")
        index = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        try:
            card = read_card(path)
        except FileNotFoundError:
            card = cardless(path)
        loaded = _load_engine(path, runtime_cache, card)
        if card.get("cardless"):  # what the card would have said, from the engine's own tensors
            half = np.dtype(np.float16) in (loaded.input_dtype, loaded.output_dtype)
            card["precision"] = "fp16" if half else "fp32"
            card["pad_multiple"] = _profile_multiple(loaded)
        if loaded.layout == "tensor":
            loaded.kernels = frame_kernels(kernels, index, "tensorrt", "host NumPy")
        else:
            log.info("tensorrt: pixel path = inside the engine (it takes uint8 frames)")
        backend = cls(path, _spec(loaded, card, index), loaded)
        fused, loaded.kernels = loaded.kernels, None  # warm up on the host path; the fused one is checked below
        if loaded.rtx:  # JIT-compile every kernel now, not on the first live frame
            started = time.perf_counter()
            log.info("tensorrt_rtx: compiling %s for this GPU (first load only; cached in %s)", path.name,
                     loaded.cache_path.name if loaded.cache_path else "memory")  # fmt: skip
            for size in backend.spec.fixed_sizes or [backend.spec.largest() or backend.spec.min_size]:
                backend.warmup(size, iterations=1)
            _save_runtime_cache(loaded)
            log.info("tensorrt_rtx: ready in %.1f s", time.perf_counter() - started)
        if fused is not None:
            backend._check_kernels(fused, kernels)
        return backend

    def _check_kernels(self, fused: Any, choice: str) -> None:
        """The same random frame through the host path and the fused kernels (`check_fused`): keep the kernels
        only if the pixels agree."""
        spec = self.spec
        size = spec.fixed_sizes[0] if spec.fixed_sizes else (
            max(spec.min_size[0], min(240, spec.max_size[0] if spec.max_size else 240)),
            max(spec.min_size[1], min(320, spec.max_size[1] if spec.max_size else 320)))  # fmt: skip

        def with_kernels(frame: np.ndarray) -> np.ndarray:
            self.loaded.kernels = fused
            try:
                return self.run(frame)
            finally:
                self.loaded.kernels = None

        if check_fused("tensorrt", choice, self.run, with_kernels, size):
            self.loaded.kernels = fused
        else:
            for buffer in (self.frames_in, self.frames_out):
                buffer.free()
            self.frames_in = self.frames_out = None

    def _shape_for(self, batch_shape: tuple[int, ...]) -> tuple[int, ...]:
        count, height, width = batch_shape[:3]
        size = self.spec.fitting_size(height, width)
        if size is None:
            raise BackendError(f"frames {width}x{height} exceed {self.path.name}'s profiles; tile them (Derainer does)")
        if self.loaded.layout == "frame":
            return (count, *size, 3)
        return (count, 3, -(-size[0] // self.multiple) * self.multiple, -(-size[1] // self.multiple) * self.multiple)

    def _select_profile(self, shape: tuple[int, ...]) -> None:
        """Switch to the optimization profile whose range holds `shape` (engines with several --shape values)."""
        for index, (low, high) in enumerate(self.loaded.profiles):
            if all(a <= b <= c for a, b, c in zip(low, shape, high)):
                if index != self.profile:
                    if not self.context.set_optimization_profile_async(index, self.stream):
                        raise BackendError(f"{self.path.name}: cannot switch to optimization profile {index}")
                    self.profile = index
                return
        raise BackendError(f"{self.path.name} has no optimization profile for input shape {shape}")

    def _execute(self, shape: tuple[int, ...]) -> None:
        cudart = _cudart()
        self._select_profile(shape)
        if not self.context.set_input_shape(self.loaded.input_name, shape):
            raise BackendError(f"{self.path.name} refused input shape {shape}")
        if self.loaded.rtx:  # RTX captures and replays the whole graph itself (WHOLE_GRAPH_CAPTURE)
            if not self.context.execute_async_v3(self.stream):
                raise BackendError(f"{self.path.name}: enqueue failed")
            return
        graph = self.graphs.get(shape)
        if graph is None:
            if not self.context.execute_async_v3(self.stream):  # the first run after a shape change is not captured
                raise BackendError(f"{self.path.name}: enqueue failed")
            _check(cudart.cudaStreamSynchronize(self.stream))
            self.graphs[shape] = self._capture()
            return  # the warm-up run already produced the output
        _check(cudart.cudaGraphLaunch(graph, self.stream))

    def _capture(self) -> Any:
        """One CUDA graph of the enqueue at the current shape (thread-local capture: other threads may allocate)."""
        cudart = _cudart()
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        _check(cudart.cudaStreamBeginCapture(self.stream, mode))
        enqueued = False
        try:
            enqueued = self.context.execute_async_v3(self.stream)
        finally:
            captured = _check(cudart.cudaStreamEndCapture(self.stream))  # always leave capture mode
        try:
            if not enqueued:
                raise BackendError(f"{self.path.name}: enqueue failed while capturing a CUDA graph")
            return _check(cudart.cudaGraphInstantiate(captured, 0))
        finally:
            cudart.cudaGraphDestroy(captured)  # the instantiated graph keeps what it needs

    def run(self, frames: Any) -> Any:
        cudart = _cudart()
        to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        if hasattr(frames, "__cuda_array_interface__"):
            return self._run_device(frames)
        batch, single = as_batch(np.asarray(frames))
        height, width = batch.shape[1:3]
        shape = self._shape_for(batch.shape)
        if self.loaded.kernels is not None and self.frames_in is not None:
            out = self._run_fused_host(np.ascontiguousarray(batch), shape)
            return out[0] if single else out
        if self.loaded.layout == "frame":
            staged = pad_frames(batch, shape[1], shape[2], self.multiple)
        else:
            staged = to_network(batch, self.multiple, self.loaded.input_dtype, size=(shape[2], shape[3]))
        count = staged.size
        self.input.host[:count] = staged.reshape(-1)
        source, nbytes = self.input.host_pointer, staged.nbytes
        _check(cudart.cudaMemcpyAsync(self.input.device, source, nbytes, to_device, self.stream))
        self._execute(shape)
        out_bytes = count * self.loaded.output_dtype.itemsize
        to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self.output.host_pointer, self.output.device, out_bytes, to_host, self.stream))
        _check(cudart.cudaStreamSynchronize(self.stream))
        out = self.output.host[:count].reshape(shape)
        out = out[:, :height, :width] if self.loaded.layout == "frame" else from_network(out, height, width)
        out = np.array(out)  # own the pixels: the pinned buffer is reused by the next call
        return out[0] if single else out

    def _fused(self, frames: Any, shape: tuple[int, ...]) -> DeviceArray:
        """Device uint8 frames -> fused kernel -> the engine -> fused kernel -> `frames_out`, all on the stream."""
        kernels = self.loaded.kernels
        batch, height, width = frames.__cuda_array_interface__["shape"][:3]
        self._select_profile(shape)  # before any write: a shape no profile holds would overrun the buffers
        frame_bytes = batch * height * width * 3
        if int(np.prod(shape)) * self.loaded.input_dtype.itemsize > self.input.nbytes or \
                frame_bytes > self.frames_out.nbytes:  # fmt: skip
            raise BackendError(f"{self.path.name}: frames {tuple(shape)} do not fit the buffers of its profiles")
        kernels.to_network(frames, DeviceArray(self.input.device, shape, self.loaded.input_dtype.str), self.stream,
                           self.multiple)
        self._execute(shape)
        out = DeviceArray(self.frames_out.device, (batch, height, width, 3))
        kernels.from_network(DeviceArray(self.output.device, shape, self.loaded.output_dtype.str), out, self.stream)
        return out

    def _run_fused_host(self, batch: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Host frames through the fused kernels: uint8 up, uint8 down, through the pinned staging buffers."""
        cudart = _cudart()
        nbytes = batch.nbytes
        self.frames_in.host[:nbytes] = batch.reshape(-1)
        to_device, to_host = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _check(cudart.cudaMemcpyAsync(self.frames_in.device, self.frames_in.host_pointer, nbytes, to_device,
                                      self.stream))  # fmt: skip
        self._fused(DeviceArray(self.frames_in.device, batch.shape), shape)
        _check(cudart.cudaMemcpyAsync(self.frames_out.host_pointer, self.frames_out.device, nbytes, to_host,
                                      self.stream))  # fmt: skip
        _check(cudart.cudaStreamSynchronize(self.stream))
        return np.array(self.frames_out.host[:nbytes].reshape(batch.shape))  # own the pixels: the buffer is reused

    def _run_device(self, frames: Any) -> DeviceFrames:
        """Device frames in, device frames out: no host copy."""
        cudart = _cudart()
        frame_size(frames)
        if self.loaded.layout != "frame":
            return self._run_device_fused(frames)
        interface = frames.__cuda_array_interface__
        shape = tuple(interface["shape"])
        shape = (1, *shape) if len(shape) == 3 else shape
        if interface.get("strides") is not None:
            raise BackendError("device frames must be C-contiguous (N, H, W, 3) uint8")
        if self._shape_for(shape) != shape:
            raise BackendError(f"device frames {shape} must match a profile exactly (pad them, or pass host frames)")
        self._select_profile(shape)  # before the copy: a batch no profile holds would overrun the input buffer
        nbytes = int(np.prod(shape))
        _wait_for_producer(interface)
        to_device = cudart.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        _check(cudart.cudaMemcpyAsync(self.input.device, interface["data"][0], nbytes, to_device, self.stream))
        self._execute(shape)
        _check(cudart.cudaStreamSynchronize(self.stream))
        return DeviceFrames(self.output.device, shape if len(interface["shape"]) == 4 else shape[1:])

    def _run_device_fused(self, frames: Any) -> DeviceFrames:
        """Device frames into a float engine: the fused kernel reads them where they are (rows may be pitched)."""
        cudart = _cudart()
        if self.loaded.kernels is None or self.frames_in is None:
            raise BackendError(f"{self.path.name} takes float tensors; device frames need the fused kernels "
                               "(derain.cpp_ext: cuda-python and NVRTC) or a uint8 frame engine")  # fmt: skip
        interface = frames.__cuda_array_interface__
        shape, strides = tuple(interface["shape"]), interface.get("strides")
        if len(shape) == 3:  # one frame: a batch of one
            strides = None if strides is None else (shape[0] * strides[0], *strides)
            shape = (1, *shape)
        _wait_for_producer(interface)
        view = DeviceArray(int(interface["data"][0]), shape, "|u1", None if strides is None else tuple(strides))
        out = self._fused(view, self._shape_for(shape))
        _check(cudart.cudaStreamSynchronize(self.stream))
        return DeviceFrames(out.pointer, out.shape if len(interface["shape"]) == 4 else out.shape[1:])

    def clone(self) -> TensorRTBackend:
        return TensorRTBackend(self.path, self.spec, self.loaded)

    def close(self) -> None:
        if self.closed:
            return
        super().close()
        cudart = _cudart()
        for graph in self.graphs.values():
            cudart.cudaGraphExecDestroy(graph)
        self.graphs.clear()
        self.context = None
        for buffer in (self.input, self.output, self.frames_in, self.frames_out):
            if buffer is not None:
                buffer.free()
        cudart.cudaStreamDestroy(self.stream)
        if self.loaded.rtx:
            _save_runtime_cache(self.loaded)

    def describe(self) -> dict[str, Any]:
        fused = "fused CUDA kernels (derain.cpp_ext)" if self.loaded.kernels is not None else "host NumPy"
        pixel_path = "inside the engine" if self.loaded.layout == "frame" else fused
        return {**super().describe(), "library": f"{self.loaded.trt.__name__} {self.loaded.trt.__version__}",
                "layout": self.loaded.layout, "pixel_path": pixel_path,
                "profiles": [[list(low), list(high)] for low, high in self.loaded.profiles]}  # fmt: skip
