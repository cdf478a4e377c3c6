"""Padding to a network's size multiple, outside `forward`, and picking the prediction from a network output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pad_multiple(model: nn.Module) -> int:
    """The multiple a network needs H and W to be (class attribute `pad_multiple`, default 1)."""
    return int(getattr(model, "pad_multiple", 1))


def pad_to_multiple(
    image: torch.Tensor, multiple: int, mode: str = "replicate"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) on the bottom/right so H and W are multiples of `multiple`.

    The default is the frame contract's edge replication (`derain.frames`), so evaluation, the ONNX graph and the
    runtime give the same border pixels. Reflect padding needs the pad to be smaller than the side; for tiny
    images it falls back to replicate.

    Returns:
        The padded tensor and the original (H, W), for `crop_to`.
    """
    if image.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, found shape {tuple(image.shape)}")
    height, width = image.shape[-2:]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    if pad_h or pad_w:
        if mode == "reflect" and (pad_h >= height or pad_w >= width):
            mode = "replicate"
        image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    return image, (height, width)


def crop_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return image[..., : size[0], : size[1]]


def prediction(output: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The final restored image of a network output (multi-stage networks return a list, prediction first)."""
    if isinstance(output, (list, tuple)):
        return output[0]
    return output


def stage_outputs(output: torch.Tensor | list[torch.Tensor] | tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    """Every stage output of a network as a list, prediction first."""
    if isinstance(output, (list, tuple)):
        return list(output)
    return [output]


def run_padded(model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """De-rain an image of any H x W: pad to the network's multiple, run, take the prediction, crop back."""
    padded, size = pad_to_multiple(image, pad_multiple(model))
    return crop_to(prediction(model(padded)), size)
