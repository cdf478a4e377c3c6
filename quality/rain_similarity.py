"""How much a rain generator's samples look like a dataset's rain: four distances, each in [0, 1].

The reference is the rain the dataset shows: `rainy - clean` of its training pairs (the built-in dataset domains
are additive, so this is the renderer's rain layer, clipped where the sum saturates), on random crops of the
generator's size, made grey as replay makes it (channel max). For a set of grey layers:

- coverage: the share of pixels brighter than `RAIN_LEVEL` (how much rain); its distance is
  |log(ratio)| / log(4), capped at 1 (a layer with 4x too much or too little rain is as far as it gets);
- intensity: the histogram of the values of those pixels (how bright the streaks are), 32 bins on (RAIN_LEVEL, 1];
- orientation: the histogram of gradient orientations (mod 180 degrees, 18 bins) weighted by gradient magnitude,
  i.e. the orientation spectrum of the streaks;
- scale: the share of the gradient energy (power spectrum x frequency squared) in each of 10 log-spaced bands of
  spatial frequency from 1/64 to 0.71 cycles per pixel, i.e. how wide, sharp and long the streaks are: a thin
  sharp streak keeps its gradient energy at high frequencies, a wide or blurred one at low ones (orientation and
  coverage alone do not see a streak twice as wide).

Histogram distances are total variation (half the L1 distance of the normalized histograms). `distance` is the
mean of the four; two independent samples of the reference itself give its noise floor (`reference_floor`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

RAIN_LEVEL = 0.02  # a pixel is rain where the layer adds more than ~5 grey levels
INTENSITY_BINS = 32
ORIENTATION_BINS = 18
SCALE_BINS = 10
SCALE_RANGE = (1 / 64, 0.5 * math.sqrt(2))  # cycles per pixel: a 64-pixel crop's lowest frequency to the corner


TERMS = ("coverage", "intensity", "orientation", "scale")


@dataclass(frozen=True)
class RainStats:
    coverage: float
    intensity: np.ndarray  # normalized histogram
    orientation: np.ndarray  # normalized histogram, bin k covers [10k, 10k + 10) degrees of gradient direction
    scale: np.ndarray  # normalized gradient energy per spatial-frequency band (SCALE_RANGE, log-spaced)


def rain_stats(layers: torch.Tensor) -> RainStats:
    """Statistics of grey rain layers, (N, 1 or 3, H, W) in [0, 1] (channels are reduced by their max)."""
    grey = layers.detach().float().cpu().amax(1, keepdim=True).clamp(0, 1)
    rain = grey > RAIN_LEVEL
    coverage = float(rain.float().mean())
    values = grey[rain]
    intensity = torch.histc(values, INTENSITY_BINS, RAIN_LEVEL, 1.0) if values.numel() else torch.zeros(INTENSITY_BINS)
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    gx = F.conv2d(grey, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(grey, sobel.t().reshape(1, 1, 3, 3))
    magnitude = torch.hypot(gx, gy).flatten()
    angle = torch.rad2deg(torch.atan2(gy, gx)).flatten() % 180.0
    bins = (angle / (180.0 / ORIENTATION_BINS)).long().clamp(max=ORIENTATION_BINS - 1)
    orientation = torch.zeros(ORIENTATION_BINS).index_add_(0, bins, magnitude)
    return RainStats(coverage, _normalized(intensity), _normalized(orientation), _normalized(_scale_spectrum(grey)))


def _scale_spectrum(grey: torch.Tensor) -> torch.Tensor:
    """Gradient energy of (N, 1, H, W) layers per log-spaced band of radial frequency (each image's mean removed)."""
    height, width = grey.shape[-2:]
    power = torch.fft.rfft2(grey[:, 0] - grey[:, 0].mean((-2, -1), keepdim=True)).abs().square().sum(0)
    frequency = torch.hypot(torch.fft.fftfreq(height).abs().view(-1, 1), torch.fft.rfftfreq(width).view(1, -1))
    twice = torch.ones(1, power.shape[-1])  # rfft keeps one of each conjugate pair but the first and Nyquist columns
    twice[:, 1 : (width + 1) // 2] = 2.0
    energy = power * frequency.square() * twice
    edges = torch.logspace(math.log10(SCALE_RANGE[0]), math.log10(SCALE_RANGE[1]), SCALE_BINS + 1)
    bins = torch.bucketize(frequency.expand_as(energy).flatten(), edges[1:-1])
    return torch.zeros(SCALE_BINS).index_add_(0, bins, energy.flatten())


def _normalized(histogram: torch.Tensor) -> np.ndarray:
    total = float(histogram.sum())
    return (histogram / total).numpy() if total > 0 else np.zeros(len(histogram))


def distances(stats: RainStats, reference: RainStats) -> dict[str, float]:
    """Per-statistic distances in [0, 1] (0 = the same) and their mean, `distance`."""
    if stats.coverage <= 0 or reference.coverage <= 0:
        coverage = 0.0 if stats.coverage == reference.coverage else 1.0
    else:
        coverage = min(1.0, abs(math.log(stats.coverage / reference.coverage)) / math.log(4.0))
    out = {
        "coverage": coverage,
        "intensity": 0.5 * float(np.abs(stats.intensity - reference.intensity).sum()),
        "orientation": 0.5 * float(np.abs(stats.orientation - reference.orientation).sum()),
        "scale": 0.5 * float(np.abs(stats.scale - reference.scale).sum()),
    }
    if not stats.intensity.any() or not reference.intensity.any():  # no rain at all on one side: as far as it gets
        out["intensity"] = out["orientation"] = out["scale"] = 1.0
    out["distance"] = sum(out[term] for term in TERMS) / len(TERMS)
    return out


@torch.no_grad()
def generator_rain(generator: torch.nn.Module, count: int, seed: int) -> torch.Tensor:
    """`count` grey layers from a rain generator's prior (fixed noise given `seed`), as replay draws them."""
    training = generator.training
    generator.eval()
    layers = generator.sample(count, torch.Generator().manual_seed(seed)).float().clamp(0, 1).amax(1, keepdim=True)
    generator.train(training)
    return layers.cpu()


def reference_floor(first: torch.Tensor, second: torch.Tensor) -> dict[str, float]:
    """Distances between two independent samples of the reference's layers (`derain.data.datasets.dataset_rain` with
    two seeds): what a perfect generator would score."""
    return distances(rain_stats(first), rain_stats(second))
