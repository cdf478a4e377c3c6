"""`Derainer`: the embedding API. One object per model and thread; frames in, clean frames out.

    from derain.runtime import Derainer

    with Derainer("model_fp16_sm89.engine") as derainer:          # or .onnx / .pt
        clean = derainer(frame)                                    # uint8 BGR (H, W, 3) -> same
        for clean, info in derainer.stream("csi://0"):             # newest frame only, bounded latency
            detections = detector(clean)                           # info: latency_ms, index, rainy, ...

Frames larger than the artifact takes (a static engine's shape, a dynamic profile's maximum) are de-rained in
overlapping tiles blended together; smaller frames are padded (edge replication) and cropped back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from derain.frames import as_batch, frame_size, tiled
from derain.runtime.backends import Backend, open_backend
from derain.runtime.sources import Source, open_source
from derain.runtime.stream import FrameInfo, Stream

log = logging.getLogger(__name__)


class Derainer:
    """A de-raining model behind the frame contract.

    Args:
        model: an artifact path (`.engine`/`.plan`, `.onnx`, `.pt`) or a loaded `Backend`.
        backend: force a backend by name ("tensorrt", "onnxruntime", "pytorch").
        device: "auto", "cpu", "cuda", "cuda:N".
        tile_overlap: pixels shared by neighbouring tiles of frames larger than the artifact takes.
        warmup: run blank frames of this (H, W) at load, so the first live frame is not the slow one.
        **options: for the backend's `load` (threads, precision, cuda_graphs, compile, runtime_cache...).
    """

    def __init__(
        self,
        model: str | Path | Backend,
        backend: str | None = None,
        device: str = "auto",
        tile_overlap: int = 32,
        warmup: tuple[int, int] | None = None,
        **options: Any,
    ) -> None:
        self.backend = model if isinstance(model, Backend) else open_backend(model, backend, device, **options)
        self.tile_overlap = tile_overlap
        if warmup is not None:
            self.backend.warmup(warmup)

    @property
    def spec(self) -> Any:
        return self.backend.spec

    def __call__(self, frames: Any) -> Any:
        """De-rain one uint8 BGR frame (H, W, 3) or a batch (N, H, W, 3). Host arrays come back as numpy; device
        arrays (torch CUDA tensors, `__cuda_array_interface__` objects) come back on the device."""
        height, width = frame_size(frames)
        if not isinstance(frames, np.ndarray) and self.spec.device_frames:
            return self.backend(frames)
        frames = np.asarray(frames)
        size = self.spec.fitting_size(height, width)
        if size is not None:
            batch, single = as_batch(frames)
            if len(batch) <= self.spec.max_batch:
                return self.backend(frames)
            out = np.stack([self.backend(frame) for frame in batch])
            return out[0] if single else out
        tile = self._tile_size()
        batch, single = as_batch(frames)
        multiple = self.spec.multiple
        overlap = min(self.tile_overlap, (min(tile) - multiple) // 2)  # small profiles: as much overlap as fits
        out = np.stack([tiled(self.backend, frame, tile, overlap, multiple) for frame in batch])
        return out[0] if single else out

    def _tile_size(self) -> tuple[int, int]:
        largest = self.spec.largest()
        if largest is None:
            raise ValueError("a dynamic artifact without a maximum size never needs tiles")
        if not self.spec.fixed_sizes:  # a dynamic profile: tiles padded to the multiple must still fit
            multiple = self.spec.multiple
            largest = (largest[0] // multiple * multiple, largest[1] // multiple * multiple)
        return largest

    def stream(self, source: str | int | Source, open_timeout: float = 10.0,
               **options: Any) -> Iterator[tuple[np.ndarray, FrameInfo]]:  # fmt: skip
        """(clean, info) for every frame of `source` (a URI or an opened `Source`); see `Stream` for the
        options (lossless, deadline_ms, deadline_action, max_fps, max_frames)."""
        opened = source if isinstance(source, Source) else open_source(source, open_timeout)
        yield from Stream(opened, self, open_timeout=open_timeout, **options)

    def clone(self) -> Derainer:
        """A Derainer for another thread: shares the loaded weights, owns its context, stream and buffers."""
        return Derainer(self.backend.clone(), tile_overlap=self.tile_overlap)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Derainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Derainer({self.backend.path.name!r}, backend={self.backend.name!r}, device={self.spec.device!r})"
