"""Networks of the unpaired framework (CSUD) that RGSUD extends: rain transfer, rain-band PatchGAN, DEM U-Net.

- `rain_transfer` T(clean, reference) -> rainy: a shared 7x7 embedding of both inputs; the reference branch
  (SN conv 4x4/2 -> LeakyReLU 0.2 -> bilinear x2 -> SN conv 3x3 -> + embedding -> SN conv 3x3); the main branch
  concatenates the clean embedding with the reference feature, runs residual blocks at 2x width, convs back to
  the base width with long skips, and a 7x7 conv to 3 channels (the rainy image itself, no image residual).
- `patch_discriminator`: PatchGAN (instance norm) on [x, x - GaussianBlur15(x, sigma 9)], so it sees the rain band.
- `dem_unet`: the degradation-estimation U-Net C(O) of RGSUD; the rain reference is O - C(O).
Widths are arguments (paper: 64 / 6 blocks / ndf 64); the CPU benchmark uses narrower ones and says so.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from derain.filters import rain_band
from derain.models.registry import NETWORKS


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.LeakyReLU(0.2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@NETWORKS.register("rain_transfer")
class RainTransfer(nn.Module):
    """T(clean, reference): put the rain of `reference` onto `clean`."""

    pad_multiple = 2

    def __init__(self, width: int = 64, blocks: int = 6) -> None:
        super().__init__()
        self.embed = nn.Conv2d(3, width, 7, 1, 3)
        self.ref_down = nn.Sequential(spectral_norm(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2))
        self.ref_up = nn.Sequential(spectral_norm(nn.Conv2d(2 * width, width, 3, 1, 1)), nn.LeakyReLU(0.2))
        self.ref_out = spectral_norm(nn.Conv2d(width, width, 3, 1, 1))
        self.body = nn.Sequential(*[_ResBlock(2 * width) for _ in range(blocks)])
        self.reduce = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, 1, 1),
        )
        self.skip = nn.Conv2d(width, width, 7, 1, 3)
        self.out = nn.Conv2d(width, 3, 7, 1, 3)

    def reference(self, reference: torch.Tensor) -> torch.Tensor:
        f0 = self.embed(reference)
        up = F.interpolate(self.ref_down(f0), size=f0.shape[-2:], mode="bilinear", align_corners=False)
        return self.ref_out(self.ref_up(up) + f0)

    def forward(self, clean: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        x = self.embed(clean)
        y = self.reduce(self.body(torch.cat((x, self.reference(reference)), 1)))
        return self.out(y + self.skip(x) + x)


@NETWORKS.register("patch_discriminator")
class PatchDiscriminator(nn.Module):
    """PatchGAN on [x, rain_band(x)]: conv4/2 -> (conv4/2 + IN) x (layers - 1) -> conv4/1 + IN -> conv4/1 -> map."""

    def __init__(self, ndf: int = 64, layers: int = 3) -> None:
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(6, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels = ndf
        for index in range(1, layers):
            out = ndf * min(2**index, 8)
            seq += [nn.Conv2d(channels, out, 4, 2, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2)]
            channels = out
        out = ndf * min(2**layers, 8)
        seq += [nn.Conv2d(channels, out, 4, 1, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2)]
        seq.append(nn.Conv2d(out, 1, 4, 1, 1))
        self.net = nn.Sequential(*seq)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat((image, rain_band(image)), 1))


@NETWORKS.register("dem_unet")
class DEMUNet(nn.Module):
    """Small U-Net estimating the clean content C(O) of a rainy image (output = input + correction)."""

    pad_multiple = 8

    def __init__(self, width: int = 32, levels: int = 4) -> None:
        super().__init__()
        widths = [width * 2**i for i in range(levels)]

        def double(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(i, o, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(o, o, 3, 1, 1), nn.LeakyReLU(0.2)
            )

        self.down = nn.ModuleList()
        channels = 3
        for w in widths:
            self.down.append(double(channels, w))
            channels = w
        self.up = nn.ModuleList(double(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(levels - 1)))
        self.out = nn.Conv2d(widths[0], 3, 3, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        skips = []
        x = image
        for index, block in enumerate(self.down):
            if index:
                x = F.avg_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat((x, skip), 1))
        return image + self.out(x)
