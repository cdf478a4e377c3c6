"""Per-frame cost of a network: parameters, MACs, and FP16 conv memory traffic.

Runs the network on the `meta` device (no memory, no arithmetic) under a dispatch mode that sees every aten op:
- MACs: convolutions (output elements x input channels per group x kernel area) and matrix products;
- conv traffic: for each convolution / matrix product, input + output + weight elements x bytes per element.
  This models an engine that fuses pointwise ops into conv epilogues but keeps every conv's activations in DRAM,
  the method of the shared notes (PERF.md section 3a); it ignores caches;
- per layer (each convolution / matrix product): its MACs and elements, for the per-layer roofline
  `layer_floor_s` = sum over layers of max(2 MACs / matmul rate, bytes / bandwidth), which is never below the
  whole-network floor max(2 MACs / rate, bytes / bandwidth) (a layer bound by memory cannot lend its idle
  arithmetic to one bound by compute).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from derain.models.padding import pad_multiple, prediction

aten = torch.ops.aten


@dataclass(frozen=True)
class FrameCost:
    params: int
    macs: int
    conv_bytes: int
    height: int
    width: int
    layers: tuple[tuple[int, int], ...] = ()  # (MACs, elements moved) of each convolution / matrix product

    def layer_floor_s(self, flops_per_s: float, bytes_per_s: float, bytes_per_element: int = 2) -> float:
        """Sum over layers of max(2 MACs / `flops_per_s`, elements x `bytes_per_element` / `bytes_per_s`)."""
        return sum(max(2 * macs / flops_per_s, elements * bytes_per_element / bytes_per_s)
                   for macs, elements in self.layers)  # fmt: skip

    @property
    def gmac(self) -> float:
        return self.macs / 1e9

    @property
    def conv_megabytes(self) -> float:
        return self.conv_bytes / 1e6


def _numel(t: torch.Tensor) -> int:
    return math.prod(t.shape)


class _CostMode(TorchDispatchMode):
    def __init__(self, bytes_per_element: int) -> None:
        super().__init__()
        self.bytes_per_element = bytes_per_element
        self.macs = 0
        self.elements = 0
        self.layers: list[tuple[int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = getattr(func, "overloadpacket", None)
        before = (self.macs, self.elements)
        if packet is aten.convolution:
            x, weight = args[0], args[1]
            transposed = args[6]
            groups = args[8]
            kernel = math.prod(weight.shape[2:])
            if transposed:  # weight (C_in, C_out / groups, k...): every input element feeds C_out/g x k outputs
                self.macs += _numel(x) * weight.shape[1] * kernel
            else:
                self.macs += _numel(out) * (x.shape[1] // groups) * kernel
            self.elements += _numel(x) + _numel(out) + _numel(weight)
        elif packet in (aten.mm, aten.bmm, aten.addmm):
            a, b = (args[1], args[2]) if packet is aten.addmm else (args[0], args[1])
            self.macs += _numel(out) * a.shape[-1]
            self.elements += _numel(a) + _numel(b) + _numel(out)
        if (self.macs, self.elements) != before:
            self.layers.append((self.macs - before[0], self.elements - before[1]))
        return out


def frame_cost(model: nn.Module, height: int, width: int, bytes_per_element: int = 2) -> FrameCost:
    """Cost of one (1, 3, height, width) frame, padded to the network's multiple as at inference."""
    multiple = pad_multiple(model)
    padded_h = -(-height // multiple) * multiple
    padded_w = -(-width // multiple) * multiple
    meta_model = copy.deepcopy(model).to("meta").eval()
    frame = torch.empty(1, 3, padded_h, padded_w, device="meta")
    mode = _CostMode(bytes_per_element)
    with torch.no_grad(), mode:
        prediction(meta_model(frame))
    params = sum(p.numel() for p in model.parameters())
    return FrameCost(params, mode.macs, mode.elements * bytes_per_element, height, width, tuple(mode.layers))
