"""A de-raining network for real-time camera frames on edge GPUs, designed around memory traffic.

On Jetson Orin every NAFNet variant is 4-8x bound by DRAM traffic, not arithmetic (shared notes, PERF.md), so
this network never runs a convolution at full resolution: the frame is pixel-unshuffled to half resolution
(lossless, 12 channels), a small U-Net with three levels (H/2, H/4, H/8) does the work, and a pixel shuffle
brings the rain-free residual back to full resolution.

Choices for TensorRT and INT8:
- only conv + ReLU, pixel-unshuffle/shuffle and residual adds (all fuse into conv epilogues or are free
  reshapes); no normalisation, so nothing overflows in FP16 and nothing needs to stay in FP32;
- downsampling by pixel-unshuffle + 1x1 conv, upsampling by 1x1 conv + pixel-shuffle (no resize ops);
- LeakyReLU(0.1) activations (fused by TensorRT like ReLU; plain ReLU let whole runs die to the identity).

Budget at 1280x720, FP16 (checked by tests with `derain.models.cost`): at most 400 MB of conv input+output+weight
traffic and at most 40 GMAC per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from derain.models.registry import NETWORKS


def act(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.1): fuses into the conv epilogue like ReLU, but a unit never dies (plain ReLU collapsed
    whole runs to the identity at lr 5e-4..1e-3 in our CPU benchmarks)."""
    return F.leaky_relu(x, 0.1)


class ResBlock(nn.Module):
    """conv3x3-act-conv3x3 with an identity skip (no activation after the add)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(act(self.conv1(x))) + x


def res_stack(count: int, channels: int) -> nn.Sequential:
    return nn.Sequential(*[ResBlock(channels) for _ in range(count)])


class Down(nn.Module):
    """Pixel-unshuffle by 2 (C -> 4C at half size) then a 1x1 conv to `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4 * in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return act(self.conv(F.pixel_unshuffle(x, 2)))


class Up(nn.Module):
    """1x1 conv to 4 * `out_channels` then pixel-shuffle by 2 (double size)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 4 * out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)


@NETWORKS.register("realtime")
class RealtimeDerainNet(nn.Module):
    """Traffic-lean U-Net working at 1/2, 1/4 and 1/8 resolution.

    Args:
        widths: channels at H/2, H/4, H/8.
        blocks: residual blocks per level on the way down (the last entry is the bottleneck).
        decoder_blocks: residual blocks at H/4 and H/2 on the way up.
        shrink: grey levels by which the predicted correction is soft-thresholded at inference, so that dry
            frames pass unchanged (0: off; `benchmarks/dry_frames.py` measures the choice).
        bypass: a frame whose mean removed brightness (negative correction, grey levels) is below this is passed
            through unchanged: a free rain detector (0: off). Applied per tile when a frame is tiled.
    """

    pad_multiple = 8

    def __init__(
        self,
        widths: tuple[int, ...] | list[int] = (24, 48, 96),
        blocks: tuple[int, ...] | list[int] = (1, 2, 4),
        decoder_blocks: tuple[int, ...] | list[int] = (2, 1),
        tail_scale: float = 0.1,
        shrink: float = 0.0,
        bypass: float = 0.0,
    ) -> None:
        super().__init__()
        self.shrink = float(shrink) / 255.0  # grey levels -> [0, 1]
        self.bypass = float(bypass) / 255.0
        if len(widths) != 3 or len(blocks) != 3 or len(decoder_blocks) != 2:
            raise ValueError("realtime net has three levels: widths and blocks of length 3, decoder_blocks of length 2")
        w1, w2, w3 = widths
        self.head = nn.Conv2d(12, w1, 3, padding=1)
        self.encoder1 = res_stack(blocks[0], w1)
        self.down1 = Down(w1, w2)
        self.encoder2 = res_stack(blocks[1], w2)
        self.down2 = Down(w2, w3)
        self.bottleneck = res_stack(blocks[2], w3)
        self.up2 = Up(w3, w2)
        self.decoder2 = res_stack(decoder_blocks[0], w2)
        self.up1 = Up(w2, w1)
        self.decoder1 = res_stack(decoder_blocks[1], w1)
        self.tail = nn.Conv2d(w1, 12, 3, padding=1)
        with torch.no_grad():  # start near the identity (small correction), with gradients reaching every layer
            self.tail.weight.mul_(tail_scale)
            self.tail.bias.zero_()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1], H and W multiples of 8 -> restored image (input + predicted correction)."""
        x1 = self.encoder1(act(self.head(F.pixel_unshuffle(image, 2))))
        x2 = self.encoder2(self.down1(x1))
        x3 = self.bottleneck(self.down2(x2))
        y2 = self.decoder2(act(self.up2(x3) + x2))
        y1 = self.decoder1(act(self.up1(y2) + x1))
        return self.finish(F.pixel_shuffle(self.tail(y1), 2), image)

    def finish(self, correction: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The restored image from the predicted correction: soft-thresholded and bypassed as configured."""
        if self.shrink > 0:  # soft-threshold: small edits (dry texture) vanish, streak removals stay
            correction = torch.sign(correction) * F.relu(correction.abs() - self.shrink)
        if self.bypass > 0:  # a frame (or tile) with less than `bypass` of streaks removed on average is dry
            removed = F.relu(-correction).mean(dim=(1, 2, 3), keepdim=True)
            correction = correction * (removed >= self.bypass).to(correction.dtype)
        return correction + image
