"""MPRNet, deraining configuration (Zamir et al., CVPR 2021), as used by CLGID.

Three stages: a U-Net on four quadrants, a U-Net on two halves with cross-stage feature fusion, and a full
resolution ORSNet. Supervised attention modules pass features between stages. `forward` returns
[stage-3 image, stage-2 image, stage-1 image]; the first is the prediction. H and W must be multiples of 8.
"""

from __future__ import annotations

import torch
from torch import nn

from derain.models.registry import NETWORKS


def conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ChannelAttention(nn.Module):
    def __init__(self, channels: int, reduction: int, bias: bool) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1, bias=bias),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1, bias=bias),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv_du(self.avg_pool(x))


class CAB(nn.Module):
    """Channel attention block: conv-act-conv, channel attention, residual."""

    def __init__(self, channels: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv(channels, channels, kernel_size, bias), act, conv(channels, channels, kernel_size, bias)
        )
        self.CA = ChannelAttention(channels, reduction, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.CA(self.body(x)) + x


class SAM(nn.Module):
    """Supervised attention module: restored image of a stage and attention-gated features for the next."""

    def __init__(self, channels: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.conv1 = conv(channels, channels, kernel_size, bias)
        self.conv2 = conv(channels, 3, kernel_size, bias)
        self.conv3 = conv(3, channels, kernel_size, bias)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        restored = self.conv2(x) + image
        attention = torch.sigmoid(self.conv3(restored))
        return self.conv1(x) * attention + x, restored


class DownSample(nn.Module):
    def __init__(self, channels: int, extra: int) -> None:
        super().__init__()
        self.down = nn.Sequential(
            nn.Upsample(scale_factor=0.5, mode="bilinear", align_corners=False),
            nn.Conv2d(channels, channels + extra, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(x)


class UpSample(nn.Module):
    def __init__(self, channels: int, extra: int) -> None:
        super().__init__()
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(channels + extra, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(x)


class SkipUpSample(UpSample):
    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.up(x) + skip


def cab_stack(count: int, channels: int, kernel_size: int, reduction: int, bias: bool, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(*[CAB(channels, kernel_size, reduction, bias, act) for _ in range(count)])


class Encoder(nn.Module):
    """Three-level U-Net encoder; with `csff`, fuses the previous stage's encoder and decoder features."""

    def __init__(
        self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool, scale: int, csff: bool
    ) -> None:
        super().__init__()
        widths = [n_feat, n_feat + scale, n_feat + 2 * scale]
        self.encoder_level1 = cab_stack(2, widths[0], kernel_size, reduction, bias, act)
        self.encoder_level2 = cab_stack(2, widths[1], kernel_size, reduction, bias, act)
        self.encoder_level3 = cab_stack(2, widths[2], kernel_size, reduction, bias, act)
        self.down12 = DownSample(widths[0], scale)
        self.down23 = DownSample(widths[1], scale)
        self.csff = csff
        if csff:  # attribute names as in the official model, so its released weights load
            for level, width in enumerate(widths, start=1):
                setattr(self, f"csff_enc{level}", nn.Conv2d(width, width, 1, bias=bias))
                setattr(self, f"csff_dec{level}", nn.Conv2d(width, width, 1, bias=bias))

    def forward(
        self,
        x: torch.Tensor,
        encoder_outs: list[torch.Tensor] | None = None,
        decoder_outs: list[torch.Tensor] | None = None,
    ) -> list[torch.Tensor]:
        outs = []
        for level, body in enumerate((self.encoder_level1, self.encoder_level2, self.encoder_level3)):
            if level == 1:
                x = self.down12(x)
            elif level == 2:
                x = self.down23(x)
            x = body(x)
            if self.csff and encoder_outs is not None and decoder_outs is not None:
                fuse_enc = getattr(self, f"csff_enc{level + 1}")
                fuse_dec = getattr(self, f"csff_dec{level + 1}")
                x = x + fuse_enc(encoder_outs[level]) + fuse_dec(decoder_outs[level])
            outs.append(x)
        return outs


class Decoder(nn.Module):
    def __init__(self, n_feat: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool, scale: int) -> None:
        super().__init__()
        widths = [n_feat, n_feat + scale, n_feat + 2 * scale]
        self.decoder_level1 = cab_stack(2, widths[0], kernel_size, reduction, bias, act)
        self.decoder_level2 = cab_stack(2, widths[1], kernel_size, reduction, bias, act)
        self.decoder_level3 = cab_stack(2, widths[2], kernel_size, reduction, bias, act)
        self.skip_attn1 = CAB(widths[0], kernel_size, reduction, bias, act)
        self.skip_attn2 = CAB(widths[1], kernel_size, reduction, bias, act)
        self.up21 = SkipUpSample(widths[0], scale)
        self.up32 = SkipUpSample(widths[1], scale)

    def forward(self, outs: list[torch.Tensor]) -> list[torch.Tensor]:
        enc1, enc2, enc3 = outs
        dec3 = self.decoder_level3(enc3)
        dec2 = self.decoder_level2(self.up32(dec3, self.skip_attn2(enc2)))
        dec1 = self.decoder_level1(self.up21(dec2, self.skip_attn1(enc1)))
        return [dec1, dec2, dec3]


class ORB(nn.Module):
    """Original-resolution block: `num_cab` CABs and a conv, residual."""

    def __init__(
        self, channels: int, kernel_size: int, reduction: int, act: nn.Module, bias: bool, num_cab: int
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [CAB(channels, kernel_size, reduction, bias, act) for _ in range(num_cab)]
        layers.append(conv(channels, channels, kernel_size))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + x


class ORSNet(nn.Module):
    def __init__(
        self,
        n_feat: int,
        scale_ors: int,
        kernel_size: int,
        reduction: int,
        act: nn.Module,
        bias: bool,
        scale_unet: int,
        num_cab: int,
    ) -> None:
        super().__init__()
        width = n_feat + scale_ors
        self.orb1 = ORB(width, kernel_size, reduction, act, bias, num_cab)
        self.orb2 = ORB(width, kernel_size, reduction, act, bias, num_cab)
        self.orb3 = ORB(width, kernel_size, reduction, act, bias, num_cab)
        self.up_enc1 = UpSample(n_feat, scale_unet)
        self.up_dec1 = UpSample(n_feat, scale_unet)
        self.up_enc2 = nn.Sequential(UpSample(n_feat + scale_unet, scale_unet), UpSample(n_feat, scale_unet))
        self.up_dec2 = nn.Sequential(UpSample(n_feat + scale_unet, scale_unet), UpSample(n_feat, scale_unet))
        for level in (1, 2, 3):
            setattr(self, f"conv_enc{level}", nn.Conv2d(n_feat, width, 1, bias=bias))
            setattr(self, f"conv_dec{level}", nn.Conv2d(n_feat, width, 1, bias=bias))

    def forward(
        self, x: torch.Tensor, encoder_outs: list[torch.Tensor], decoder_outs: list[torch.Tensor]
    ) -> torch.Tensor:
        x = self.orb1(x)
        x = x + self.conv_enc1(encoder_outs[0]) + self.conv_dec1(decoder_outs[0])
        x = self.orb2(x)
        x = x + self.conv_enc2(self.up_enc1(encoder_outs[1])) + self.conv_dec2(self.up_dec1(decoder_outs[1]))
        x = self.orb3(x)
        x = x + self.conv_enc3(self.up_enc2(encoder_outs[2])) + self.conv_dec3(self.up_dec2(decoder_outs[2]))
        return x


@NETWORKS.register("mprnet")
class MPRNet(nn.Module):
    """MPRNet for deraining: defaults are the official deraining model (about 3.64 M parameters)."""

    pad_multiple = 8

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        n_feat: int = 40,
        scale_unetfeats: int = 20,
        scale_orsnetfeats: int = 16,
        num_cab: int = 8,
        kernel_size: int = 3,
        reduction: int = 4,
        bias: bool = False,
    ) -> None:
        super().__init__()
        act = nn.PReLU()  # one slope, shared by every CAB, as in the official model
        self.shallow_feat1 = nn.Sequential(
            conv(in_channels, n_feat, kernel_size, bias), CAB(n_feat, kernel_size, reduction, bias, act)
        )
        self.shallow_feat2 = nn.Sequential(
            conv(in_channels, n_feat, kernel_size, bias), CAB(n_feat, kernel_size, reduction, bias, act)
        )
        self.shallow_feat3 = nn.Sequential(
            conv(in_channels, n_feat, kernel_size, bias), CAB(n_feat, kernel_size, reduction, bias, act)
        )
        self.stage1_encoder = Encoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats, csff=False)
        self.stage1_decoder = Decoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats)
        self.stage2_encoder = Encoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats, csff=True)
        self.stage2_decoder = Decoder(n_feat, kernel_size, reduction, act, bias, scale_unetfeats)
        self.stage3_orsnet = ORSNet(
            n_feat, scale_orsnetfeats, kernel_size, reduction, act, bias, scale_unetfeats, num_cab
        )
        self.sam12 = SAM(n_feat, kernel_size=1, bias=bias)
        self.sam23 = SAM(n_feat, kernel_size=1, bias=bias)
        self.concat12 = conv(n_feat * 2, n_feat, kernel_size, bias)
        self.concat23 = conv(n_feat * 2, n_feat + scale_orsnetfeats, kernel_size, bias)
        self.tail = conv(n_feat + scale_orsnetfeats, out_channels, kernel_size, bias)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) in [0, 1], H and W multiples of 8 -> [stage-3, stage-2, stage-1] images."""
        half_h = image.shape[2] // 2
        half_w = image.shape[3] // 2
        top, bottom = image[:, :, :half_h], image[:, :, half_h:]
        quadrants = [top[..., :half_w], top[..., half_w:], bottom[..., :half_w], bottom[..., half_w:]]

        # Stage 1: encoder per quadrant, quadrant features joined along width, decoder per half.
        feats = [self.stage1_encoder(self.shallow_feat1(q)) for q in quadrants]
        feat1_top = [torch.cat(pair, 3) for pair in zip(feats[0], feats[1])]
        feat1_bottom = [torch.cat(pair, 3) for pair in zip(feats[2], feats[3])]
        res1_top = self.stage1_decoder(feat1_top)
        res1_bottom = self.stage1_decoder(feat1_bottom)
        sam_top, stage1_top = self.sam12(res1_top[0], top)
        sam_bottom, stage1_bottom = self.sam12(res1_bottom[0], bottom)
        stage1 = torch.cat([stage1_top, stage1_bottom], 2)

        # Stage 2: halves, fused with stage-1 features, joined along height for the decoder.
        x2_top = self.concat12(torch.cat([self.shallow_feat2(top), sam_top], 1))
        x2_bottom = self.concat12(torch.cat([self.shallow_feat2(bottom), sam_bottom], 1))
        feat2_top = self.stage2_encoder(x2_top, feat1_top, res1_top)
        feat2_bottom = self.stage2_encoder(x2_bottom, feat1_bottom, res1_bottom)
        feat2 = [torch.cat(pair, 2) for pair in zip(feat2_top, feat2_bottom)]
        res2 = self.stage2_decoder(feat2)
        sam3, stage2 = self.sam23(res2[0], image)

        # Stage 3: full resolution ORSNet.
        x3 = self.concat23(torch.cat([self.shallow_feat3(image), sam3], 1))
        x3 = self.stage3_orsnet(x3, feat2, res2)
        return [self.tail(x3) + image, stage2, stage1]
