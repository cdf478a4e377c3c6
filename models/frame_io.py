"""The frame contract (`derain.frames`) in torch: uint8 BGR frames in and out around a network.

One module serves the ONNX frame graph (`derain-export --io uint8` traces it) and the PyTorch backend of the
runtime (which runs it as is), so both give the same pixels as the numpy reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from derain.frames import SCALE
from derain.models.padding import prediction

TORCH_PAD_MODE = "replicate"  # = derain.frames.PAD_MODE ("edge"); ONNX exports it as Pad(mode="edge")


class PredictionOnly(nn.Module):
    """Wraps a network so it returns only its final prediction (multi-stage nets return lists)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return prediction(self.network(image))


class NetworkOnly(nn.Module):
    """The network alone on an RGB tensor, for when fused kernels convert the frames (`derain.cpp_ext`): its
    prediction, with the input made channels_last first when asked."""

    def __init__(self, network: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.network = network
        self.channels_last = channels_last

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        return prediction(self.network(image.contiguous(memory_format=layout)))


def frames_to_tensor(frame: torch.Tensor, multiple: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 BGR (B, H, W, 3) -> `dtype` RGB (B, 3, Hp, Wp) in [0, 1], padded bottom/right to `multiple`.

    The cast comes before the transpose (TensorRT cannot transpose uint8 tensors); the division is in float32.
    """
    image = frame.float().permute(0, 3, 1, 2).flip(1) / SCALE
    height, width = image.shape[-2:]
    pad_h = (multiple - height % multiple) % multiple
    pad_w = (multiple - width % multiple) % multiple
    image = F.pad(image, (0, pad_w, 0, pad_h), mode=TORCH_PAD_MODE)
    return image.to(dtype)


def tensor_to_frames(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 3, Hp, Wp) RGB float -> uint8 BGR (B, height, width, 3): crop, clamp, scale, round half to even."""
    restored = image[..., :height, :width].float()
    restored = (restored.clamp(0, 1) * SCALE).round()
    return restored.flip(1).permute(0, 2, 3, 1).to(torch.uint8)


class FrameIO(nn.Module):
    """uint8 BGR frames (B, H, W, 3) in and out around a network on RGB (B, 3, H, W) in [0, 1].

    Args:
        multiple: the network's size multiple (padding inside).
        dtype: the network's input dtype (torch.float16 for a half network).
        channels_last: hand the network an NHWC-strided tensor (faster convolutions on GPUs; no effect in ONNX).
    """

    def __init__(
        self, network: nn.Module, multiple: int, dtype: torch.dtype = torch.float32, channels_last: bool = False
    ) -> None:
        super().__init__()
        self.network = network
        self.multiple = multiple
        self.dtype = dtype
        self.channels_last = channels_last

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        height, width = frame.shape[1:3]
        image = frames_to_tensor(frame, self.multiple, self.dtype)
        # the permuted frame is NHWC-strided already: make the layout explicit either way (no-op in ONNX)
        image = image.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        return tensor_to_frames(prediction(self.network(image)), height, width)


def is_temporal(network: nn.Module) -> bool:
    """Whether a network takes its past (the previous frame and output) beside the frame (`models.temporal`)."""
    return bool(getattr(network, "temporal", False))


class TemporalFrameIO(FrameIO):
    """`FrameIO` for a temporal network: uint8 BGR frame, previous frame and previous output (B, H, W, 3) in, the
    de-rained frame out (the next call's previous output). Passing the frame itself as both previous images is a
    reset (no past)."""

    def forward(self, frame: torch.Tensor, previous_frame: torch.Tensor, previous_output: torch.Tensor
                ) -> torch.Tensor:  # fmt: skip
        height, width = frame.shape[1:3]
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        image, before, made = (frames_to_tensor(x, self.multiple, self.dtype).contiguous(memory_format=layout) for x in
                               (frame, previous_frame, previous_output))  # fmt: skip
        return tensor_to_frames(prediction(self.network(image, before, made)), height, width)


class TemporalPredictionOnly(nn.Module):
    """A temporal network on float tensors (image, previous image, previous output), its prediction only."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, image: torch.Tensor, previous_image: torch.Tensor, previous_output: torch.Tensor
                ) -> torch.Tensor:  # fmt: skip
        return prediction(self.network(image, previous_image, previous_output))
