"""`Derainer`: the embedding API. One object per model and thread; frames in, clean frames out.

    from derain.runtime import Derainer

    with Derainer("model_fp16_sm89.engine") as derainer:          # or .onnx / .pt, or "builtin" (the default)
        clean = derainer(frame)                                    # uint8 BGR (H, W, 3) -> same
        stream = derainer.stream("csi://0")                        # newest frame only, bounded latency
        for clean, info in stream:                                 # info: timestamp, action, rain_score, latency_ms
            detections = detector(clean)                           # stream.stats.snapshot(): fps, drops, ...

Any frame size gives the network's own result where the artifact can take it (PyTorch, dynamic ONNX graphs and
profiles: padded only to the network's multiple). Frames larger than the artifact takes (a static engine's shape, a
dynamic profile's maximum) are de-rained in tiles that keep the network's measured context around every pixel they
give (`derain.frames.tiled`), which gives its own result too; smaller frames are padded into a static shape by
repeating the frame (`derain.frames.pad_index`) and cropped back.

A temporal de-rainer (`derain.models.temporal`: a checkpoint or ONNX graph that takes the previous frame and output)
carries that state from call to call: one `Derainer` is one stream (`clone()` for another), frames are consecutive,
and the state resets on a cut, a new frame size, a timestamp gap or `reset()` (`derain.runtime.temporal`).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from derain.builtin import is_builtin, resolve_weights
from derain.cpp_ext.reference import network_to_nv12, nv12_to_network
from derain.frames import (
    DEFAULT_CONTEXT,
    FrameError,
    as_batch,
    frame_size,
    from_network,
    tile_context,
    tiled,
    to_network,
)
from derain.runtime.backends import Backend, open_backend
from derain.runtime.choose import choose_artifact
from derain.runtime.sources import Source, open_source
from derain.runtime.stream import Backoff, Stream
from derain.runtime.temporal import TemporalState

log = logging.getLogger(__name__)


class Derainer:
    """A de-raining model behind the frame contract.

    Args:
        model: an artifact path (`.engine`/`.plan`, `.onnx`, `.pt`), a folder of artifacts (the one this machine
            runs best is picked, `derain.runtime.choose.choose_artifact`, and the log says why), a loaded `Backend`,
            or "builtin" / None (the shipped de-rainer, on PyTorch).
        backend: force a backend by name ("tensorrt", "onnxruntime", "pytorch").
        device: "auto", "cpu", "cuda", "cuda:N".
        tile_context: pixels of context tiles keep around every pixel of frames larger than the artifact takes
            (default: the network's receptive-field radius recorded at export, else DEFAULT_CONTEXT).
        warmup: run blank frames of this (H, W) at load, so the first live frame is not the slow one.
        precision: from a folder, which precision to pick ("best": the fastest this machine runs, else fp32, fp16,
            int8, fp8); for a checkpoint, the PyTorch backend's fp32 / fp16.
        state: for a temporal model, the state this stream starts with (default: a fresh `TemporalState` with
            its cut and gap thresholds).
        **options: for the backend's `load` (threads, precision, cuda_graphs, compile, runtime_cache...).
    """

    def __init__(
        self,
        model: str | Path | Backend | None = "builtin",
        backend: str | None = None,
        device: str = "auto",
        tile_context: int | None = None,
        warmup: tuple[int, int] | None = None,
        precision: str | None = None,
        state: TemporalState | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(model, Backend):
            if not isinstance(model, (str, Path, type(None))):
                raise TypeError(f"model must be an artifact path, a folder of them, 'builtin' or a Backend, not "
                                f"{type(model).__name__}")  # fmt: skip
            if model is not None and not is_builtin(model) and Path(model).is_dir():
                choice = choose_artifact(model, precision or "best", device, backend)
                model = choice.path
                if choice.path.suffix == ".pt" and choice.precision == "fp16":
                    options["precision"] = "fp16"
            elif precision not in (None, "best"):
                if is_builtin(model) or Path(str(model)).suffix.lower() == ".pt":
                    options["precision"] = precision  # the PyTorch backend's fp32 / fp16
                else:
                    log.warning("precision=%s picks among the artifacts of a folder; %s computes in the precision "
                                "it was exported in", precision, Path(str(model)).name)  # fmt: skip
            model = open_backend(resolve_weights(model) if is_builtin(model) else model, backend, device, **options)
        self.backend = model
        if tile_context is not None and tile_context < 0:
            raise ValueError(f"tile_context must be >= 0, got {tile_context}")
        self.tile_context = tile_context
        self._warned: set[object] = set()  # what the log has said once
        self.state = (state or TemporalState()) if self.spec.temporal else None
        if warmup is not None:
            self.backend.warmup(warmup)

    @property
    def temporal(self) -> bool:
        """Whether the model takes its past: frames given to one Derainer are one stream, in order."""
        return self.state is not None

    def reset(self) -> None:
        """Forget the past (a temporal model's next frame is de-rained as the per-frame network would); no-op for
        per-frame models. Call it on a seek or a flush; cuts, size changes and timestamp gaps reset by themselves."""
        if self.state is not None:
            self.state.reset()

    @property
    def spec(self) -> Any:
        return self.backend.spec

    def __call__(self, frames: Any, timestamp: float | None = None) -> Any:
        """De-rain one uint8 BGR frame (H, W, 3) or a batch (N, H, W, 3). Host arrays come back as numpy; device
        arrays (torch CUDA tensors, `__cuda_array_interface__` objects) come back on the device. A temporal model
        takes the frames of one stream in order (a batch: consecutive frames), `timestamp` in seconds (optional:
        a gap resets its past)."""
        height, width = frame_size(frames)
        if self.state is not None:
            return self._temporal(frames, height, width, timestamp)
        if len(getattr(frames, "shape", ())) == 4 and frames.shape[0] == 0:  # an empty batch: nothing to de-rain
            return frames[:0] if not isinstance(frames, np.ndarray) else np.empty_like(frames)
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
        context = self.context(tile)
        out = np.stack([tiled(self.backend, frame, tile, context, self.spec.multiple) for frame in batch])
        return out[0] if single else out

    def _temporal(self, frames: Any, height: int, width: int, timestamp: float | None) -> np.ndarray:
        """Frames of one stream through a temporal model, each with the past the state keeps for it."""
        if not isinstance(frames, np.ndarray):
            raise FrameError("a temporal model takes host (numpy) frames")
        if self.spec.fitting_size(height, width) is None:
            largest = self.spec.largest()
            raise FrameError(f"{width}x{height} frames are larger than {self.backend.path.name} takes "
                             f"({largest[1]}x{largest[0]}); temporal models are not tiled: export them for the "
                             "camera's size")  # fmt: skip
        batch, single = as_batch(frames)
        outputs = []
        for frame in batch:
            previous = self.state.previous(frame, timestamp if single else None)
            out = self.backend(frame, previous)
            self.state.update(frame.copy(), out, timestamp if single else None)  # the caller may reuse its buffer
            outputs.append(out)
        return outputs[0] if single else np.stack(outputs)

    def nv12(self, luma: np.ndarray, chroma: np.ndarray, matrix: int = 601, full_range: bool = False
             ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """De-rain one NV12 frame: luma (H, W) and chroma (H/2, W/2, 2) uint8 planes (strided views are fine, e.g.
        a mapped GStreamer buffer) -> new (luma, chroma) planes. The pixels are decoded (BT.601 or BT.709, limited
        or full range: `derain.cpp_ext.reference`, the CUDA kernels' reference) to the BGR frame contract, de-rained
        exactly as a BGR frame, and encoded back (chroma the mean of each 2x2 block)."""
        height, width = frame_size(np.empty((*luma.shape, 3), np.uint8))
        if luma.ndim != 2 or chroma.shape != (height // 2, width // 2, 2) or height % 2 or width % 2:
            raise FrameError(f"NV12 needs luma (H, W) and chroma (H/2, W/2, 2) with H and W even; got {luma.shape} "
                             f"and {chroma.shape}")  # fmt: skip
        if luma.dtype != np.uint8 or chroma.dtype != np.uint8:
            raise FrameError(f"NV12 planes must be uint8, got {luma.dtype} and {chroma.dtype}")
        rgb = nv12_to_network(luma[None], chroma[None], matrix, full_range)
        clean = self(from_network(rgb, height, width)[0])
        out_luma, out_chroma = network_to_nv12(to_network(clean[None]), height, width, matrix, full_range)
        return out_luma[0], out_chroma[0]

    def context(self, tile: tuple[int, int] | None = None) -> int:
        """The context tiles keep: `tile_context`, the artifact's recorded one, or DEFAULT_CONTEXT; capped at what
        tiles of `tile` leave room for (with a warning, as tiles then no longer give the network's own result)."""
        wanted = self.tile_context if self.tile_context is not None else self.spec.context
        if wanted is None:
            if "context" not in self._warned:
                self._warned.add("context")
                log.warning("%s records no receptive field (exported before it was measured): tiles keep %d px of "
                            "context", self.backend.path.name, DEFAULT_CONTEXT)  # fmt: skip
            wanted = DEFAULT_CONTEXT
        if tile is None:
            return wanted
        context = tile_context(tile, wanted, self.spec.multiple)
        if context < wanted and tile not in self._warned:
            self._warned.add(tile)
            log.warning("tiles of %dx%d leave room for %d px of context, not the network's %d: seams may show",
                        tile[1], tile[0], context, wanted)  # fmt: skip
        return context

    def _tile_size(self) -> tuple[int, int]:
        largest = self.spec.largest()
        if largest is None:
            raise ValueError("a dynamic artifact without a maximum size never needs tiles")
        multiple = self.spec.multiple  # tiles start and end on the multiple, padded into the artifact's size
        return largest[0] // multiple * multiple, largest[1] // multiple * multiple

    def stream(self, source: str | int | Source, open_timeout: float = 10.0, wait_for_source: float = 0.0,
               reconnect: int | None = None, **options: Any) -> Stream:  # fmt: skip
        """The frames of `source` (a URI or an opened `Source`) through this model: iterate it for (clean, info)
        pairs (`FrameInfo`: index, the source's timestamp and clock, derained / dry / passthrough, rain score,
        latency); `.stats.snapshot()` is the health the CLI prints (fps, latency percentiles, drops, pass-throughs,
        reconnects), readable from any thread; `.stop()` ends it.

        Args:
            wait_for_source: seconds to keep trying a source that is not up yet (0: it must open now).
            reconnect: how many times a live source that fails is reopened in a row (None: forever; 0: never).
            **options: for `Stream` (lossless, deadline_ms, deadline_action, max_fps, max_frames).
        """
        if reconnect is not None and reconnect < 0:
            raise ValueError(f"reconnect must be >= 0 or None, got {reconnect}")
        backoff = options.pop("backoff", None) or Backoff()
        if reconnect is not None:
            backoff = dataclasses.replace(backoff, attempts=reconnect)
        opened = source if isinstance(source, Source) else open_source(source, open_timeout, wait=wait_for_source)
        try:
            return Stream(opened, self, open_timeout=open_timeout, backoff=backoff, **options)
        except Exception:
            if opened is not source:  # opened here: a camera is not left held by a stream that never was
                opened.close()
            raise

    def clone(self) -> Derainer:
        """A Derainer for another thread or stream: shares the loaded weights, owns its context, stream, buffers and
        (temporal models) its past."""
        state = None if self.state is None else TemporalState(self.state.cut_levels, self.state.max_gap_s,
                                                              self.state.align)  # fmt: skip
        return Derainer(self.backend.clone(), tile_context=self.tile_context, state=state)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Derainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Derainer({self.backend.path.name!r}, backend={self.backend.name!r}, device={self.spec.device!r})"
