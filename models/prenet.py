"""PReNet (Ren et al., CVPR 2019): progressive recurrent de-raining with a ConvLSTM, 6 stages by default.

`forward` returns the stage outputs, final stage first. Attribute names follow the official code, so its
released weights load.
"""

from __future__ import annotations

import torch
from torch import nn

from derain.models.registry import NETWORKS


def conv_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, 1, 1), nn.ReLU()]


class PReNet(nn.Module):
    pad_multiple = 1

    def __init__(self, recurrent_iter: int = 6, channels: int = 32) -> None:
        super().__init__()
        self.iterations = recurrent_iter
        self.conv0 = nn.Sequential(*conv_relu(6, channels))
        for index in range(1, 6):
            setattr(
                self, f"res_conv{index}", nn.Sequential(*conv_relu(channels, channels), *conv_relu(channels, channels))
            )
        self.conv_i = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, 1, 1), nn.Sigmoid())
        self.conv_f = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, 1, 1), nn.Sigmoid())
        self.conv_g = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, 1, 1), nn.Tanh())
        self.conv_o = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, 1, 1), nn.Sigmoid())
        self.conv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1] -> list of `recurrent_iter` stage images, final stage first."""
        x = image
        hidden = cell = None
        outputs = []
        for _ in range(self.iterations):
            x = self.conv0(torch.cat((image, x), 1))
            if hidden is None:  # zero initial state, shaped from the features (export-friendly)
                hidden = cell = torch.zeros_like(x)
            x = torch.cat((x, hidden), 1)
            cell = self.conv_f(x) * cell + self.conv_i(x) * self.conv_g(x)
            hidden = self.conv_o(x) * torch.tanh(cell)
            x = hidden
            for block in (self.res_conv1, self.res_conv2, self.res_conv3, self.res_conv4, self.res_conv5):
                x = torch.relu(block(x) + x)
            x = self.conv(x) + image
            outputs.append(x)
        return outputs[::-1]


NETWORKS.add("prenet", PReNet)
