"""A video de-rainer: the real-time network that also sees the frame before and what it made of it.

A camera gives a de-rainer what a photo never does: the same scene a frame earlier, with the rain somewhere else.
`RealtimeTemporalNet` is `RealtimeDerainNet` plus a memory branch at half resolution that reads two differences,
`previous_output - frame` (where the last de-rained frame disagrees with this rainy one: a streak now, or motion) and
`previous_frame - frame` (what moved: rain, or the camera), and adds its features to the head's; and a trust map
`a` in [0, 1] from the last decoder features, with which the output takes that difference over:

    out = frame + correction + a * (previous_output - frame)

(where the scene stood still and the network trusts its past, `a` -> 1 and the correction -> 0: the previous
output comes through; where the camera moved or a cut was missed, `a` -> 0). The branch has no biases and its last
convolution starts at zero, and `a` starts near zero (its bias at -8: under a tenth of a grey level of the
difference), so:

- built from the per-frame network's weights (`from_per_frame`), it starts as exactly that network;
- with no past (a reset: the first frame, a cut, a new size, a gap; the runtime passes the frame itself as both
  previous images) both differences are zero and it *is* the per-frame network, whatever it learned.

The state a stream carries is therefore two frames (the last input and the last output), which the ONNX graph takes
as inputs beside the frame; its output is the next state's `previous_output`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from derain.models.realtime import RealtimeDerainNet, act
from derain.models.registry import NETWORKS


@NETWORKS.register("realtime_temporal")
class RealtimeTemporalNet(RealtimeDerainNet):
    """`RealtimeDerainNet` (same arguments) with a memory branch over (previous output, previous frame).

    Args:
        memory_width: channels of the memory branch at H/2 (default: half the first level's width).
    """

    temporal = True

    def __init__(
        self,
        widths: tuple[int, ...] | list[int] = (24, 48, 96),
        blocks: tuple[int, ...] | list[int] = (1, 2, 4),
        decoder_blocks: tuple[int, ...] | list[int] = (2, 1),
        tail_scale: float = 0.1,
        shrink: float = 0.0,
        bypass: float = 0.0,
        memory_width: int | None = None,
    ) -> None:
        super().__init__(widths, blocks, decoder_blocks, tail_scale, shrink, bypass)
        width = self.head.out_channels
        memory_width = int(memory_width or width // 2)
        self.memory_in = nn.Conv2d(24, memory_width, 3, padding=1, bias=False)
        self.memory_mid = nn.Conv2d(memory_width, memory_width, 3, padding=1, bias=False)
        self.memory_out = nn.Conv2d(memory_width, width, 1, bias=False)
        nn.init.zeros_(self.memory_out.weight)  # starts as the per-frame network
        self.trust = nn.Conv2d(width, 4, 3, padding=1)  # -> pixel shuffle: one trust value per full-res pixel
        nn.init.zeros_(self.trust.weight)
        nn.init.constant_(self.trust.bias, -8.0)

    def forward(
        self, image: torch.Tensor, previous_frame: torch.Tensor | None = None,
        previous_output: torch.Tensor | None = None,
    ) -> torch.Tensor:  # fmt: skip
        """(B, 3, H, W) frame in [0, 1] and the previous frame and output (same shape; None: no past) ->
        restored frame."""
        if previous_frame is None or previous_output is None:
            previous_frame = previous_output = image
        past = torch.cat([previous_output - image, previous_frame - image], dim=1)
        memory = self.memory_out(act(self.memory_mid(act(self.memory_in(F.pixel_unshuffle(past, 2))))))
        x1 = self.encoder1(act(self.head(F.pixel_unshuffle(image, 2)) + memory))
        x2 = self.encoder2(self.down1(x1))
        x3 = self.bottleneck(self.down2(x2))
        y2 = self.decoder2(act(self.up2(x3) + x2))
        y1 = self.decoder1(act(self.up1(y2) + x1))
        trust = torch.sigmoid(F.pixel_shuffle(self.trust(y1), 2))
        return self.finish(F.pixel_shuffle(self.tail(y1), 2), image) + trust * (previous_output - image)

    def branch_parameters(self) -> list[nn.Parameter]:
        """The weights the per-frame network does not have (trained at their own rate)."""
        return [p for name, p in self.named_parameters() if name.startswith(("memory_", "trust"))]


def from_per_frame(weights: dict[str, torch.Tensor], **kwargs: object) -> RealtimeTemporalNet:
    """A temporal network that starts as the per-frame `realtime` network with these weights (its memory branch's
    output at zero); the branch's other weights are initialized as usual."""
    from derain.models.registry import build_model, load_weights

    model = build_model("realtime_temporal", **kwargs)
    own = model.state_dict()
    merged = {name: weights[name] if name in weights and not name.startswith(("memory_", "trust")) else value
              for name, value in own.items()}  # fmt: skip
    missing = sorted(set(weights) - set(own))
    if missing:
        raise ValueError(f"not the realtime network's weights: {', '.join(missing[:4])} have no place here")
    load_weights(model, merged, source="per-frame weights")
    return model
