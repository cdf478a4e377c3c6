"""The streaming runtime: backends by artifact, sources and sinks by URI, a bounded-latency pipeline, `Derainer`.

Light on purpose: importing it loads numpy and OpenCV only. TensorRT, onnxruntime, torch and cuda-python are
imported by the backend that needs them, when an artifact is loaded (a Jetson process needs no torch).
"""

from __future__ import annotations

from derain.frames import FrameError
from derain.runtime.backends import Backend, BackendError, InputSpec, open_backend
from derain.runtime.derainer import Derainer
from derain.runtime.sinks import SinkError, open_sink, side_by_side
from derain.runtime.sources import SourceError, Status, open_source
from derain.runtime.stats import StreamStats
from derain.runtime.stream import Backoff, FrameInfo, Stream

__all__ = [
    "Backend",
    "BackendError",
    "Backoff",
    "Derainer",
    "FrameError",
    "FrameInfo",
    "InputSpec",
    "SinkError",
    "SourceError",
    "Status",
    "Stream",
    "StreamStats",
    "open_backend",
    "open_sink",
    "open_source",
    "side_by_side",
]
