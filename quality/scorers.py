"""Offline no-reference scorers for RGSUD's reward pool (the paper's DACLIP-IQA cannot be downloaded here).

All scorers are lower-is-better and only need to rank two outputs *of the same image*:
- `niqe`: NIQE with the pristine model fitted on the clean training images (`derain.quality.niqe`);
- `rain_cnn`: a small CNN trained to tell rainy from clean patches from the high-pass band, frozen after
  training; score = mean patch P(rainy);
- `combined`: niqe / niqe_scale + rain_weight * P(rainy), the scales fixed at fit time from the clean and rainy
  training images (so both terms spread alike).
`fit_scorer(name, clean, rainy)` builds one; `Scorer.save/load` keep it with a run.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from derain.filters import rain_band
from derain.quality.niqe import NIQEModel
from derain.registry import Registry


class RainClassifier(nn.Module):
    """Patch classifier on [x - blur(x)] (the rain band): logits map, one per ~16x16 patch."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, 1, 1),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(rain_band(image) * 4)


def _crops(images: list[torch.Tensor], size: int, count: int, generator: torch.Generator) -> torch.Tensor:
    out = []
    for _ in range(count):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        h, w = image.shape[-2:]
        y = int(torch.randint(h - size + 1, (1,), generator=generator))
        x = int(torch.randint(w - size + 1, (1,), generator=generator))
        crop = image[:, y : y + size, x : x + size]
        if torch.rand(1, generator=generator) < 0.5:
            crop = crop.flip(-1)
        out.append(crop)
    return torch.stack(out)


def train_rain_classifier(
    clean: list[torch.Tensor],
    rainy: list[torch.Tensor],
    steps: int = 600,
    batch: int = 32,
    crop: int = 64,
    seed: int = 0,
) -> RainClassifier:
    """Train on crops of clean (label 0) and rainy (label 1) images, then freeze."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = RainClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        x = torch.cat((_crops(clean, crop, batch // 2, generator), _crops(rainy, crop, batch // 2, generator)))
        jitter = 1 + 0.2 * (torch.rand(len(x), 3, 1, 1, generator=generator) - 0.5)  # colour is not the cue
        x = (x * jitter).clamp(0, 1)
        logits = model(x)
        labels = torch.cat((torch.zeros(batch // 2), torch.ones(batch // 2))).view(-1, 1, 1, 1).expand_as(logits)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


class Scorer:
    """A frozen lower-is-better score of (B, 3, H, W) images in [0, 1]."""

    name = "scorer"

    def score(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def state(self) -> dict:
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        from derain.outputs import atomic_torch_save

        atomic_torch_save({"name": self.name, **self.state()}, path)


class NIQEScorer(Scorer):
    name = "niqe"

    def __init__(self, model: NIQEModel) -> None:
        self.model = model

    def score(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.score(images)

    def state(self) -> dict:
        return {"niqe": self.model.state()}

    @classmethod
    def from_state(cls, state: dict) -> NIQEScorer:
        s = state["niqe"]
        return cls(NIQEModel(s["mean"], s["cov"], int(s["block"])))


class RainCNNScorer(Scorer):
    name = "rain_cnn"

    def __init__(self, model: RainClassifier) -> None:
        self.model = model.eval()

    @torch.no_grad()
    def score(self, images: torch.Tensor) -> torch.Tensor:
        self.model.to(images.device)
        return torch.sigmoid(self.model(images.float())).flatten(1).mean(1)

    def state(self) -> dict:
        return {"weights": self.model.state_dict()}

    @classmethod
    def from_state(cls, state: dict) -> RainCNNScorer:
        model = RainClassifier()
        model.load_state_dict(state["weights"])
        return cls(model)


class CombinedScorer(Scorer):
    name = "combined"

    def __init__(self, niqe: NIQEScorer, rain: RainCNNScorer, niqe_scale: float, rain_weight: float) -> None:
        self.niqe, self.rain = niqe, rain
        self.niqe_scale, self.rain_weight = niqe_scale, rain_weight

    def score(self, images: torch.Tensor) -> torch.Tensor:
        return self.niqe.score(images) / self.niqe_scale + self.rain_weight * self.rain.score(images)

    def state(self) -> dict:
        return {
            "niqe": self.niqe.state()["niqe"],
            "weights": self.rain.state()["weights"],
            "niqe_scale": self.niqe_scale,
            "rain_weight": self.rain_weight,
        }

    @classmethod
    def from_state(cls, state: dict) -> CombinedScorer:
        return cls(
            NIQEScorer.from_state(state), RainCNNScorer.from_state(state), state["niqe_scale"], state["rain_weight"]
        )


SCORERS: Registry[type[Scorer]] = Registry("reward scorer")
SCORERS.add("niqe", NIQEScorer)
SCORERS.add("rain_cnn", RainCNNScorer)
SCORERS.add("combined", CombinedScorer)


def _batched(scorer: Scorer, images: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([scorer.score(image[None]) for image in images])


def fit_scorer(
    name: str, clean: list[torch.Tensor], rainy: list[torch.Tensor], block: int = 64, classifier_steps: int = 600
) -> Scorer:
    """Fit a scorer offline from clean training images (NIQE) and rainy vs clean images (the rain CNN)."""
    SCORERS.get(name)  # unknown names fail first
    if name == "niqe":
        return NIQEScorer(NIQEModel.fit(clean, block=block))
    rain = RainCNNScorer(train_rain_classifier(clean, rainy, steps=classifier_steps))
    if name == "rain_cnn":
        return rain
    niqe = NIQEScorer(NIQEModel.fit(clean, block=block))
    sample_clean, sample_rainy = clean[:16], rainy[:16]
    niqe_gap = (_batched(niqe, sample_rainy).mean() - _batched(niqe, sample_clean).mean()).abs().item()
    rain_gap = (_batched(rain, sample_rainy).mean() - _batched(rain, sample_clean).mean()).abs().item()
    niqe_scale = max(niqe_gap, 1e-3)
    return CombinedScorer(niqe, rain, niqe_scale, rain_weight=1.0 / max(rain_gap, 1e-3))


def spearman(a: list[float] | torch.Tensor, b: list[float] | torch.Tensor) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)

    def ranks(x: torch.Tensor) -> torch.Tensor:
        order = x.argsort()
        r = torch.empty_like(x)
        r[order] = torch.arange(len(x), dtype=torch.float64)
        for value in x.unique():  # average ties
            tied = x == value
            r[tied] = r[tied].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0
