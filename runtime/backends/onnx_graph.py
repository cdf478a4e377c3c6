"""ONNX Runtime backend: `.onnx` graphs written by `derain-export` (uint8 frame I/O or float tensor I/O).

CPU execution with a configurable thread count, or the CUDA execution provider where onnxruntime-gpu is installed;
with CUDA, frames that are already on the device (`__cuda_array_interface__`) are bound with IOBinding, so they
are not copied through the host. Graph metadata is read through onnxruntime itself (no `onnx` package needed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from derain import cuda_python
from derain.frames import as_batch, from_network, pad_frames, to_network
from derain.runtime.backends.base import Backend, BackendError, DeviceFrames, InputSpec, default_cpu_threads

log = logging.getLogger(__name__)


def _metadata(session: Any) -> dict[str, Any]:
    meta = {}
    for key, value in session.get_modelmeta().custom_metadata_map.items():
        try:
            meta[key] = json.loads(value)
        except json.JSONDecodeError:
            meta[key] = value
    return meta


def _graph_layout(path: Path, session: Any) -> tuple[str, list[Any]]:
    """("frame" | "tensor", input shape) of a de-raining graph, or a BackendError saying what the graph is instead."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    found = ", ".join(f"{t.name} {t.type} {t.shape}" for t in inputs)
    temporal = len(inputs) == 3 and all(t.type == inputs[0].type and t.shape == inputs[0].shape for t in inputs)
    if (len(inputs) != 1 and not temporal) or len(outputs) < 1:
        raise BackendError(f"{path.name} is not a de-raining graph: expected one image input (or three of one shape: "
                           f"a temporal graph's frame and state), found {found or 'none'}")  # fmt: skip
    tensor = inputs[0]
    shape = list(tensor.shape)
    if tensor.type == "tensor(uint8)" and len(shape) == 4 and shape[3] == 3:
        return "frame", shape
    if tensor.type in ("tensor(float)", "tensor(float16)") and len(shape) == 4 and shape[1] == 3:
        return "tensor", shape
    raise BackendError(
        f"{path.name} is not a de-raining graph: expected a uint8 (N, H, W, 3) frame or float (N, 3, H, W) image "
        f"input, found {found}"
    )


class OnnxBackend(Backend):
    """An exported graph on onnxruntime."""

    name = "onnxruntime"
    suffixes = (".onnx",)

    def __init__(self, path: Path, spec: InputSpec, session: Any, layout: str, input_dtype: Any) -> None:
        super().__init__(path, spec)
        self.session = session
        self.layout = layout
        self.input_dtype = input_dtype
        self.input_name = session.get_inputs()[0].name
        self.state_names = [tensor.name for tensor in session.get_inputs()[1:]]  # a temporal graph's state inputs
        self.output_name = session.get_outputs()[0].name
        self.last_output: Any = None

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", threads: int | None = None, **options: Any) -> OnnxBackend:
        """Args:
        device: "cpu", "cuda" / "cuda:N" (needs onnxruntime-gpu), or "auto" (CUDA where available).
        threads: intra-op threads on CPU (default: `default_cpu_threads()`).
        """
        try:
            import onnxruntime as ort
        except ImportError as error:
            raise BackendError(f"loading {path} needs onnxruntime ({error}): pip install onnxruntime") from None
        path = Path(path)
        if not path.is_file():
            raise BackendError(f"ONNX graph not found: {path}")
        available = ort.get_available_providers()
        if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
            raise BackendError(f"device {device!r} asked for, but this onnxruntime has only {available}")
        use_cuda = device.startswith("cuda") or (device == "auto" and "CUDAExecutionProvider" in available)
        device_id = int(device.split(":")[1]) if device.startswith("cuda:") else 0
        providers: list[Any] = [("CUDAExecutionProvider", {"device_id": device_id})] if use_cuda else []
        providers.append("CPUExecutionProvider")
        session_options = ort.SessionOptions()
        session_options.log_severity_level = 3
        if not use_cuda:
            session_options.intra_op_num_threads = int(threads) if threads else default_cpu_threads()
        try:
            session = ort.InferenceSession(str(path), session_options, providers=providers)
        except Exception as error:  # onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
            raise BackendError(f"{path.name} is not a loadable ONNX graph ({type(error).__name__}: {error})") from None
        layout, shape = _graph_layout(path, session)
        meta = _metadata(session)
        spatial = shape[1:3] if layout == "frame" else shape[2:4]
        fixed = tuple(spatial) if all(isinstance(side, int) for side in spatial) else None
        input_dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
        spec = InputSpec(
            multiple=int(meta.get("pad_multiple", 1)),
            fixed_sizes=(fixed,) if fixed else (),
            max_batch=shape[0] if isinstance(shape[0], int) else 64,
            precision=str(meta.get("precision", "fp32")),
            device=f"cuda:{device_id}" if use_cuda else "cpu",
            device_frames=use_cuda,
            context=int(meta["context"]) if isinstance(meta.get("context"), int) else None,
            temporal=len(session.get_inputs()) == 3,
        )
        log.info("onnxruntime: %s (%s I/O, %s) on %s", path.name, layout, spec.precision, session.get_providers()[0])
        return cls(path, spec, session, layout, input_dtype)

    def run(self, frames: Any, previous: tuple[Any, Any] | None = None) -> Any:
        if hasattr(frames, "__cuda_array_interface__"):
            if self.spec.temporal:
                raise BackendError(f"{self.path.name} is temporal: it takes host (numpy) frames")
            return self._run_device(frames)
        batch, single = as_batch(np.asarray(frames))
        height, width = batch.shape[1:3]
        size = self.spec.fitting_size(height, width) if self.spec.fixed_sizes else None
        stack = [batch]
        if self.spec.temporal:
            stack += [batch, batch] if previous is None else [as_batch(np.asarray(x))[0] for x in previous]
            if any(x.shape != batch.shape for x in stack):
                raise BackendError(f"previous frames / outputs {[x.shape for x in stack[1:]]} do not match the "
                                   f"frames {batch.shape}")  # fmt: skip
        names = [self.input_name, *self.state_names]
        if self.layout == "frame":
            feeds = [x if size is None else pad_frames(x, *size, self.spec.multiple) for x in stack]
            out = self.session.run([self.output_name], {n: np.ascontiguousarray(x) for n, x in zip(names, feeds)})[0]
            out = out[:, :height, :width]
        else:
            tensors = {n: to_network(x, self.spec.multiple, self.input_dtype, size=size) for n, x in zip(names, stack)}
            out = from_network(self.session.run([self.output_name], tensors)[0], height, width)
        return np.ascontiguousarray(out[0] if single else out)

    def _run_device(self, frames: Any) -> DeviceFrames:
        """Device frames through IOBinding (CUDA provider, uint8 frame graphs): no host copy either way. The result
        views the graph's output on the device and stays valid until the next call."""
        interface = frames.__cuda_array_interface__
        if not self.spec.device_frames or self.layout != "frame":
            raise BackendError(
                f"{self.path.name} on {self.spec.device} takes host (numpy) frames; device frames need the CUDA "
                "provider and a uint8 frame graph"
            )
        if interface.get("strides") is not None:
            raise BackendError("device frames must be C-contiguous uint8 (N, H, W, 3)")
        shape = tuple(interface["shape"])
        batch = (1, *shape) if len(shape) == 3 else shape
        if self.spec.fixed_sizes and batch[1:3] not in self.spec.fixed_sizes:
            raise BackendError(f"{self.path.name} takes {self.spec.fixed_sizes} frames; device frames are not padded")
        # __cuda_array_interface__ v3: wait for the stream that wrote the pixels
        cuda_python.wait_for_stream(interface.get("stream"), BackendError)
        binding = self.session.io_binding()
        device_id = int(self.spec.device.split(":")[1])
        binding.bind_input(self.input_name, "cuda", device_id, np.uint8, list(batch), interface["data"][0])
        binding.bind_output(self.output_name, "cuda", device_id)
        self.session.run_with_iobinding(binding)
        self.last_output = binding.get_outputs()[0]  # keeps the device memory alive until the next call
        return DeviceFrames(self.last_output.data_ptr(), shape)

    def clone(self) -> OnnxBackend:
        """onnxruntime sessions are safe to run from several threads: the clone shares the session."""
        return OnnxBackend(self.path, self.spec, self.session, self.layout, self.input_dtype)

    def close(self) -> None:
        super().close()
        self.session = None

    def describe(self) -> dict[str, Any]:
        import onnxruntime as ort

        providers = self.session.get_providers() if self.session is not None else []
        return {**super().describe(), "library": f"onnxruntime {ort.__version__}", "providers": providers,
                "layout": self.layout}  # fmt: skip
