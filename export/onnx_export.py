"""Checkpoint -> ONNX, with float tensor I/O or uint8 frame I/O baked into the graph, and metadata.

- `io="float"`: input `image` (B, 3, H, W) RGB in [0, 1], output `derained` the same; H and W must be multiples of
  the network's `pad_multiple` (padding stays with the caller).
- `io="uint8"`: input `frame` (1, H, W, 3) uint8 BGR (an OpenCV frame), output `derained` (1, H, W, 3) uint8 BGR.
  The graph is `derain.models.frame_io.FrameIO`, the frame contract of `derain.frames` (cast, RGB, pad bottom/right
  to the network's multiple by edge replication, network, crop, clamp, x255, round half to even), so any H x W in
  the allowed range works.
- a temporal network (`derain.models.temporal`) takes its state as two more inputs of the same layout,
  `previous_frame` and `previous_output` (float I/O: `previous_image`, `previous_output`); its output is the next
  call's `previous_output`. The frame itself as both is a reset.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from derain.frames import MAX_SIDE, MIN_SIDE
from derain.models.frame_io import FrameIO, PredictionOnly, TemporalFrameIO, TemporalPredictionOnly, is_temporal
from derain.models.padding import pad_multiple

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
IO_MODES = ("float", "uint8")
INPUT_NAMES = {"float": "image", "uint8": "frame"}
STATE_NAMES = {"float": ("previous_image", "previous_output"), "uint8": ("previous_frame", "previous_output")}
OUTPUT_NAME = "derained"


def input_shape(io: str, batch: int, height: int, width: int) -> tuple[int, int, int, int]:
    """The graph's input shape for a batch of frames of `height` x `width`."""
    return (batch, height, width, 3) if io == "uint8" else (batch, 3, height, width)


def check_shape(model: nn.Module, io: str, height: int, width: int) -> None:
    """Float I/O needs multiples of the network's pad; uint8 I/O pads in the graph, so any size in
    MIN_SIDE..MAX_SIDE works."""
    if io not in IO_MODES:
        raise ValueError(f"io must be one of {IO_MODES}, got {io!r}")
    multiple = pad_multiple(model)
    if not (MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE):
        raise ValueError(f"shape {height}x{width} is outside {MIN_SIDE}..{MAX_SIDE}")
    if io == "float" and (height % multiple or width % multiple):
        raise ValueError(
            f"shape {height}x{width} is not a multiple of the network's {multiple}; pad the frames to "
            f"{-(-height // multiple) * multiple}x{-(-width // multiple) * multiple} or export with io=uint8, "
            "which pads inside the graph"
        )


def export_onnx(
    model: nn.Module,
    path: str | Path,
    height: int = 64,
    width: int = 64,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
    io: str = "float",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Export the prediction of `model` to ONNX.

    Args:
        height, width: the example frame size (the fixed size when not `dynamic`).
        dynamic: batch, H and W free (float I/O: multiples of the network's pad; uint8 I/O: any size >= 8).
        io: "float" or "uint8" (see the module docstring).
        metadata: key -> JSON-able value, written into the ONNX `metadata_props`.
    """
    check_shape(model, io, height, width)
    multiple = pad_multiple(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporal = is_temporal(model)
    if temporal:
        wrapped = (TemporalFrameIO(model, multiple) if io == "uint8" else TemporalPredictionOnly(model)).eval()
    else:
        wrapped = (FrameIO(model, multiple) if io == "uint8" else PredictionOnly(model)).eval()
    names = [INPUT_NAMES[io], *(STATE_NAMES[io] if temporal else ())]
    if io == "uint8":
        examples = tuple(torch.randint(0, 256, input_shape(io, 1, height, width), dtype=torch.uint8) for _ in names)
    else:
        examples = tuple(torch.rand(input_shape(io, 1, height, width)) for _ in names)
    dynamic_shapes = None
    if dynamic:
        # frame graphs take one camera frame per call (the padding arithmetic ties the batch dim in MPRNet's trace)
        batch = None if io == "uint8" else torch.export.Dim("batch", min=1, max=64)
        if io == "uint8" or multiple == 1:
            h, w = torch.export.Dim("h", min=MIN_SIDE, max=MAX_SIDE), torch.export.Dim("w", min=MIN_SIDE, max=MAX_SIDE)
        else:
            h = torch.export.Dim("h", min=1, max=MAX_SIDE // multiple) * multiple
            w = torch.export.Dim("w", min=1, max=MAX_SIDE // multiple) * multiple
        axes = {1: h, 2: w} if io == "uint8" else {0: batch, 2: h, 3: w}
        dynamic_shapes = {name: dict(axes) for name in names}  # keyed by the forward arguments, named as the inputs
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped,
            examples,
            input_names=names,
            output_names=[OUTPUT_NAME],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    program.save(str(path))
    if metadata:
        write_metadata(path, metadata)
    return path


def write_metadata(path: str | Path, metadata: dict[str, Any]) -> None:
    """Set `metadata_props` of an ONNX file (values stored as JSON), keeping the entries already there."""
    import onnx

    model = onnx.load(str(path))
    props = {prop.key: prop.value for prop in model.metadata_props}
    props.update({key: json.dumps(value) for key, value in metadata.items()})
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The `metadata_props` of an ONNX file, JSON-decoded where they are JSON."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for prop in model.metadata_props:
        try:
            out[prop.key] = json.loads(prop.value)
        except json.JSONDecodeError:
            out[prop.key] = prop.value
    return out
