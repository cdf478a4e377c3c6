"""VRGNet (Wang et al., CVPR 2021), the rain memory of CLGID: a generator that learns one dataset's rain.

Rainy O = B + R. An inference net maps O to a latent posterior N(mu_z, sigma_z^2) (128-d), a generator maps a
latent to a non-negative rain layer R = G(z), a background net (PReNet-style) gives the clean-image posterior
N(mu_b, sigma_b^2), and a SAGAN-style critic compares real O with mu_b + G(z). After training only the
generator is kept: CLGID samples z ~ N(0, I) and adds G(z) (made grey) to current clean images.

Shapes follow the released code for 64x64 crops; `size` (a power of two >= 64) adds transposed-conv /
strided-conv stages for larger rain layers (e.g. 256, as VRGNet's 256 variant).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import spectral_norm

from derain.models.registry import NETWORKS

LOGVAR_MIN, LOGVAR_MAX = math.log(1e-8), math.log(1e4)


def _stages(size: int) -> int:
    """Number of x2 stages between 4x4 and `size` (4 for 64)."""
    stages = int(round(math.log2(size))) - 2
    if size < 64 or 2 ** (stages + 2) != size:
        raise ValueError(f"rain layer size must be a power of two >= 64, got {size}")
    return stages


def init_normal(module: nn.Module) -> None:
    """The released init: every Conv/ConvTranspose weight ~ N(0, 0.02)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, 0.02)


class RainEncoder(nn.Module):
    """Inference net q(z | O): strided 4x4 convs to 1x1, then a linear layer to [mu_z, logvar_z]."""

    def __init__(self, nz: int = 128, size: int = 64, nef: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for index in range(_stages(size)):
            out = nef * 2 ** min(index, 3)
            layers += [nn.Conv2d(channels, out, 4, 2, 1, bias=False), nn.ReLU(inplace=True)]
            channels = out
        layers += [nn.Conv2d(channels, 512, 4, 1, 0, bias=False), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(512, 2 * nz)
        self.nz = nz

    def forward(self, rainy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.head(self.features(rainy).flatten(1))
        mu, logvar = stats.split(self.nz, dim=1)
        return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


@NETWORKS.register("vrgnet_generator")
class RainGenerator(nn.Module):
    """G: latent (B, nz) -> rain layer (B, 3, size, size), non-negative (ReLU at the end)."""

    def __init__(self, nz: int = 128, size: int = 64, ngf: int = 32) -> None:
        super().__init__()
        stages = _stages(size)
        self.nz, self.size = nz, size
        self.project = nn.Linear(nz, 512)
        layers: list[nn.Module] = [nn.ReLU(inplace=True), nn.ConvTranspose2d(512, ngf * 8, 4, 1, 0, bias=False)]
        channels = ngf * 8
        for index in range(stages):
            last = index == stages - 1
            out = 3 if last else max(ngf, channels // 2)
            layers += [nn.ReLU(inplace=True), nn.ConvTranspose2d(channels, out, 4, 2, 1, bias=False)]
            channels = out
        layers.append(nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.project(z).view(-1, 512, 1, 1))

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` rain layers from the prior z ~ N(0, I)."""
        device = self.project.weight.device
        z = torch.randn(count, self.nz, generator=generator, device="cpu").to(device)
        return self.forward(z)


class BackgroundNet(nn.Module):
    """q(B | O): PReNet (6 recurrent stages, ConvLSTM); the last stage gives [mu_b - O, logvar_b]."""

    def __init__(self, stages: int = 6, channels: int = 32) -> None:
        super().__init__()
        self.stages = stages

        def conv(i: int, o: int) -> nn.Conv2d:
            return nn.Conv2d(i, o, 3, 1, 1)

        self.conv0 = nn.Sequential(conv(6, channels), nn.ReLU())
        self.blocks = nn.ModuleList(
            nn.Sequential(conv(channels, channels), nn.ReLU(), conv(channels, channels), nn.ReLU()) for _ in range(5)
        )
        self.gates = conv(2 * channels, 4 * channels)  # i, f, g, o in one conv
        self.out = conv(channels, 3)
        self.out_last = conv(channels, 6)

    def forward(self, rainy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = rainy
        hidden = cell = None
        for stage in range(self.stages):
            feat = self.conv0(torch.cat((rainy, x), 1))
            if hidden is None:
                hidden = cell = torch.zeros_like(feat)
            i, f, g, o = self.gates(torch.cat((feat, hidden), 1)).chunk(4, 1)
            cell = torch.sigmoid(f) * cell + torch.sigmoid(i) * torch.tanh(g)
            hidden = torch.sigmoid(o) * torch.tanh(cell)
            feat = hidden
            for block in self.blocks:
                feat = torch.relu(block(feat) + feat)
            if stage < self.stages - 1:
                x = self.out(feat) + rainy
            else:
                last = self.out_last(feat)
                return last[:, :3] + rainy, last[:, 3:].clamp(LOGVAR_MIN, LOGVAR_MAX)
        raise AssertionError("unreachable")


class SelfAttention(nn.Module):
    """SAGAN self-attention: query/key 1x1 to C/8, value 1x1, output scaled by gamma (initialised 0)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.query = nn.Conv2d(channels, channels // 8, 1)
        self.key = nn.Conv2d(channels, channels // 8, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).flatten(2).transpose(1, 2)
        k = self.key(x).flatten(2)
        attention = torch.softmax(q @ k, dim=-1)
        out = (self.value(x).flatten(2) @ attention.transpose(1, 2)).view(b, c, h, w)
        return self.gamma * out + x


class RainCritic(nn.Module):
    """SAGAN-style WGAN critic: spectral-norm strided convs, self-attention at 8x8 and 4x4, scalar score."""

    def __init__(self, size: int = 64, ndf: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        stages = _stages(size)
        for index in range(stages):
            out = ndf * 2 ** min(index, 3)
            layers += [spectral_norm(nn.Conv2d(channels, out, 4, 2, 1)), nn.LeakyReLU(0.1)]
            if index >= stages - 2:
                layers.append(SelfAttention(out))
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4))
        self.net = nn.Sequential(*layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image).flatten()


class VRGNet(nn.Module):
    """The four parts trained together on one dataset; only `generator` goes into the bank."""

    def __init__(
        self, nz: int = 128, size: int = 64, background_stages: int = 6, background_channels: int = 32
    ) -> None:
        super().__init__()
        self.encoder = RainEncoder(nz, size)
        self.generator = RainGenerator(nz, size)
        self.background = BackgroundNet(background_stages, background_channels)
        self.critic = RainCritic(size)
        for part in (self.encoder, self.generator, self.background):
            init_normal(part)

    def synthesize(self, rainy: torch.Tensor) -> dict[str, torch.Tensor]:
        """Posterior pass: rain from q(z|O), background mean; the fake rainy image is mu_b + G(z)."""
        mu_z, logvar_z = self.encoder(rainy)
        z = mu_z + torch.randn_like(mu_z) * torch.exp(0.5 * logvar_z)
        rain = self.generator(z)
        mu_b, logvar_b = self.background(rainy)
        return {
            "fake": mu_b + rain,
            "rain": rain,
            "mu_z": mu_z,
            "logvar_z": logvar_z,
            "mu_b": mu_b,
            "logvar_b": logvar_b,
        }


def grey_rain(rain: torch.Tensor) -> torch.Tensor:
    """CLGID's grey conversion: per-pixel max over the colour channels, copied to all three."""
    return rain.amax(dim=1, keepdim=True).expand_as(rain)
