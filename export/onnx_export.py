"""Checkpoint -> ONNX: float frames (B, 3, H, W) in [0, 1] in, the network's prediction out."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from derain.models.padding import pad_multiple, prediction

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18


class PredictionOnly(nn.Module):
    """Wraps a network so it returns only its final prediction (multi-stage nets return lists)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return prediction(self.network(image))


def export_onnx(
    model: nn.Module,
    path: str | Path,
    height: int = 64,
    width: int = 64,
    dynamic: bool = True,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export the prediction of `model` to ONNX; with `dynamic`, batch, H and W are free.

    H and W of the example (and, with `dynamic`, of every input at run time) must be multiples of the
    network's `pad_multiple`; padding stays outside the graph unless the uint8 frame graph adds it.
    """
    multiple = pad_multiple(model)
    if height % multiple or width % multiple:
        raise ValueError(f"export shape {height}x{width} is not a multiple of the network's {multiple}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapped = PredictionOnly(model).eval()
    example = torch.rand(1, 3, height, width)
    dynamic_shapes = None
    if dynamic:
        batch = torch.export.Dim("batch", min=1, max=64)
        h = (
            torch.export.Dim("h", min=1, max=8192 // multiple) * multiple
            if multiple > 1
            else torch.export.Dim("h", min=8, max=8192)
        )
        w = (
            torch.export.Dim("w", min=1, max=8192 // multiple) * multiple
            if multiple > 1
            else torch.export.Dim("w", min=8, max=8192)
        )
        dynamic_shapes = {"image": {0: batch, 2: h, 3: w}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapped,
            (example,),
            input_names=["image"],
            output_names=["derained"],
            opset_version=opset,
            dynamo=True,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
        )
    program.save(str(path))
    return path
