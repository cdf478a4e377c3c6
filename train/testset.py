"""Scores on the data v2 test set, with per-scene means and bootstrap 95 % confidence intervals.

`score_domains` runs any de-rainer given as a callable on uint8 RGB crops (a torch model through
`model_runner`, an ONNX or TensorRT backend through the runtime) over every domain's rainy test crops and over
the clean crops (the "clean input" column: how much a dry frame is damaged), and returns, per domain, the
per-image PSNR-Y/SSIM-Y of the rainy input and of the output, their means with CIs, the mean gain with its CI
(paired: the same crops), and the per-scene means.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from derain.data.scenes import paired_crops
from derain.quality.metrics import psnr, ssim

Runner = Callable[[list[np.ndarray]], list[np.ndarray]]
CLEAN = "clean input"  # the dry-weather row: the network fed the clean crops
PSNR_CAP = 100.0


def bootstrap_ci(values: Sequence[float], resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the mean of `values`."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        return (float(data.mean()), float(data.mean())) if data.size else (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, (resamples, data.size))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def batch_metrics(pred: list[np.ndarray], target: list[np.ndarray]) -> dict[str, np.ndarray]:
    """PSNR-Y and SSIM-Y (MATLAB convention, float64) per image of equal-size uint8 RGB lists."""

    def stack(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).double() / 255.0

    x, y = stack(pred), stack(target)
    scores = {
        "psnr_y": psnr(x, y, "y").numpy(),
        "ssim_y": ssim(x, y, "y").numpy(),
        "psnr_rgb": psnr(x, y, "rgb").numpy(),
    }
    for key in ("psnr_y", "psnr_rgb"):  # identical images (+inf) are scored PSNR_CAP so that means stay finite
        scores[key] = np.minimum(scores[key], PSNR_CAP)
    return scores


def model_runner(model: torch.nn.Module, device: torch.device | str = "cpu", batch: int = 32) -> Runner:
    """A torch de-raining network as a runner (inputs are multiples of 16: no padding needed)."""
    from derain.models import prediction

    @torch.no_grad()
    def run(images: list[np.ndarray]) -> list[np.ndarray]:
        outputs = []
        for start in range(0, len(images), batch):
            x = torch.from_numpy(np.stack(images[start : start + batch])).permute(0, 3, 1, 2).float().div(255)
            y = prediction(model(x.to(device))).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu()
            outputs += list(y.numpy())
        return outputs

    return run


def summarize(scores: dict[str, np.ndarray], scenes: list[str]) -> dict:
    """Means, CIs and per-scene means of per-image scores {name: (N,)}."""
    out: dict = {}
    for key, values in scores.items():
        out[key] = {"mean": float(values.mean()), "ci": bootstrap_ci(values), "median": float(np.median(values)),
                    "at_cap": int((values >= PSNR_CAP).sum()) if key.startswith("psnr") else 0}  # fmt: skip
        out[key]["scenes"] = {s: float(values[[x == s for x in scenes]].mean()) for s in dict.fromkeys(scenes)}
    return out


def score_domains(run: Runner, domains: Sequence[str], clean_row: bool = True, seed: int = 0,
                  limit: int | None = None) -> dict[str, dict]:  # fmt: skip
    """Per domain (and `CLEAN`): {"n", "input": {...}, "output": {...}, "gain": {...}} of PSNR-Y and SSIM-Y; `limit`:
    that many crops spread over the test set (a smoke run's size), else all of them."""
    results = {}
    for domain in [*domains, *([None] if clean_row else [])]:
        clean, rainy, scenes = paired_crops(domain, seed=seed)
        keep = np.linspace(0, len(clean) - 1, min(limit or len(clean), len(clean))).round().astype(int)
        clean, rainy, scenes = [clean[i] for i in keep], [rainy[i] for i in keep], [scenes[i] for i in keep]
        output = run(rainy)
        before = {key: values[keep] for key, values in _input_metrics(domain, seed).items()}
        after = batch_metrics(output, clean)
        gain = {key: after[key] - before[key] for key in ("psnr_y", "ssim_y")}
        results[domain or CLEAN] = {
            "n": len(clean),
            "input": summarize(before, scenes) if domain else None,
            "output": summarize(after, scenes),
            "gain": summarize(gain, scenes) if domain else None,
        }
    return results


@functools.lru_cache(maxsize=16)
def _input_metrics(domain: str | None, seed: int) -> dict[str, np.ndarray]:
    """The rainy input's scores of a domain (the same for every network scored in this process)."""
    clean, rainy, _ = paired_crops(domain, seed=seed)
    return batch_metrics(rainy, clean)


def crop_scores(model: torch.nn.Module | None, domains: Sequence[str | None]) -> dict[str, dict[str, list[float]]]:
    """Per-crop PSNR-Y / SSIM-Y of a network (None: the rainy input itself) on the test crops of each domain (None:
    the clean crops, the dry-weather column, keyed `CLEAN`)."""
    run = model_runner(model.eval()) if model is not None else None
    scores = {}
    for domain in domains:
        clean, rainy, _ = paired_crops(domain)
        values = batch_metrics(run(rainy) if run is not None else rainy, clean)
        scores[domain or CLEAN] = {key: values[key].tolist() for key in ("psnr_y", "ssim_y")}
    return scores


def mean_ci(values: Sequence[float]) -> str:
    """ "mean [low, high]" of per-crop values with their 95 % bootstrap interval, two decimals."""
    data = np.asarray(values, dtype=np.float64)
    low, high = bootstrap_ci(data)
    return f"{data.mean():.2f} [{low:.2f}, {high:.2f}]"


def _fmt(entry: dict, key: str, digits: int = 2) -> str:
    value, (low, high) = entry[key]["mean"], entry[key]["ci"]
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def worst_gain(scores: dict[str, dict]) -> tuple[str, float]:
    """The domain with the smallest mean PSNR-Y gain, and that gain."""
    gains = {d: e["gain"]["psnr_y"]["mean"] for d, e in scores.items() if e["gain"]}
    worst = min(gains, key=gains.get)
    return worst, gains[worst]


def table_lines(scores: dict[str, dict], seen: Sequence[str] | None) -> list[str]:
    """Markdown: one row per domain (rainy input, output, gain, SSIM, per-scene gains), then the clean input.
    `seen`: the domains the network trained on (None: unknown, the role column shows "-")."""
    lines = [
        "| domain | role | rainy input PSNR-Y | output PSNR-Y | gain (dB) | input SSIM-Y | output SSIM-Y "
        "| gain per scene (dB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for domain, entry in scores.items():
        if domain == CLEAN:
            continue
        scenes = ", ".join(f"{s.split('.')[0]} {v:+.2f}" for s, v in entry["gain"]["psnr_y"]["scenes"].items())
        lines.append(
            f"| {domain} | {'-' if seen is None else 'seen' if domain in seen else 'unseen'} | "
            f"{_fmt(entry['input'], 'psnr_y')} | "
            f"{_fmt(entry['output'], 'psnr_y')} | {_fmt(entry['gain'], 'psnr_y')} | "
            f"{_fmt(entry['input'], 'ssim_y', 4)} | {_fmt(entry['output'], 'ssim_y', 4)} | {scenes} |"
        )
    if CLEAN in scores:
        dry = scores[CLEAN]["output"]
        scenes = ", ".join(f"{s.split('.')[0]} {v:.2f}" for s, v in dry["psnr_y"]["scenes"].items())
        lines += [
            "",
            "Clean input (dry weather: the network fed the clean crops, PSNR-Y against them; 100 = unchanged): "
            f"**{_fmt(dry, 'psnr_y')} dB** (median {dry['psnr_y']['median']:.2f} dB; {dry['psnr_y']['at_cap']} of "
            f"{scores[CLEAN]['n']} crops passed unchanged), SSIM-Y {_fmt(dry, 'ssim_y', 4)}; per scene: {scenes}.",
        ]
    domain, gain = worst_gain(scores)
    lines += ["", f"Smallest gain over all domains: {gain:+.2f} dB ({domain})."]
    return lines


def image_grid(
    run: Runner, domains: Sequence[str], path: str | Path, picks: tuple[int, ...] = (7, 40, 75, 110)
) -> None:
    """Per domain (or `CLEAN`), for a few crops: rainy | de-rained | clean, each zoomed 2x (nearest), labelled."""
    import cv2

    rows = []
    for domain in domains:
        clean, rainy, _ = paired_crops(domain if domain != CLEAN else None)
        chosen = [i for i in picks if i < len(clean)]
        output = run([rainy[i] for i in chosen])
        tiles = []
        for index, out in zip(chosen, output, strict=True):
            triple = np.concatenate([rainy[index], out, clean[index]], axis=1)
            tiles.append(cv2.resize(triple, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST))
            tiles.append(np.full((tiles[-1].shape[0], 6, 3), 255, np.uint8))
        row = np.concatenate(tiles[:-1], axis=1)
        label = np.full((24, row.shape[1], 3), 255, np.uint8)
        cv2.putText(label, f"{domain}: rainy | de-rained | clean", (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.55, 0, 1)
        rows += [label, row]
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(rows, axis=0), cv2.COLOR_RGB2BGR))
