"""Adapting a de-rainer to a new camera's rain from unpaired footage, without forgetting the earlier rain
(`derain-adapt`).

A new camera, lens or windshield brings rain the de-rainer has not seen, and only footage of it: rainy clips, perhaps
dry ones; never a clean twin of a rainy frame. Adaptation, from the start network (the shipped de-rainer or any
checkpoint of the same kind):

1. **Footage**: frames sampled from the rainy clips (video files and image folders, `derain.data.footage`: at most
   one frame per `every_seconds` of video, at most `per_clip` per clip, spread over the clip), and
   from the dry clips if given. Whole clips are held out (the last `holdout` of the clips; one clip: its last part)
   to judge the result on footage the adaptation did not train on.
2. **Learning the new rain**, by one of two methods or both (`method`):
   - `render` (the parametric rain memory fitted to the footage): the rain is estimated as what the start network
     removes from the rainy frames (`rainy - start(rainy)`); the renderer's parameters (`CAMERA_SPACE`: streak
     layers, directions, screen blending, tint) are fitted by analysis-by-synthesis so that rain rendered over
     clean frames, passed through the same start network, leaves a residual with the same statistics
     (`quality.rain_similarity`): the network's blind spots are on both sides of the comparison. The veil is
     measured from the footage's dark channels instead (`footage_veil`; fitted, it came out 2-3x too thick).
     Training then renders that rain over the dry footage (or the built-in scenes) as pairs.
   - `reward` (RGSUD's reward recycling and self-reinforcement, without its auxiliaries): for a fixed set of
     footage crops, the best output the network has produced so far, by a no-reference rain score, is kept as the
     crop's reward (updated when a better output appears) and the network is trained toward it.
   - `mix`: both.
   Either way a share of the camera's part of each batch is its dry frames left dry (`new_dry_fraction`).
3. **Old rain kept**: every batch also replays the earlier domains as the shipped recipe renders them (the dataset
   domains, `real_like`, randomized rain, dry frames), with distillation toward the start network on them at
   `kd_weight` (0, as benchmarks/results/adapt.md was measured; the continual benchmark's sweep has since found
   KD 0.1 a little better than 0 there, +1.95 against +1.40 dB over sequential, and KD 1 holding the new task back;
   0.1 is not measured here).
4. **The guard**: every validation scores the earlier domains (rendered validation crops, PSNR per domain), dry
   frames, the held-out footage (the rain score of the outputs: a classifier of the footage's rain against clean
   frames, trained before adaptation and frozen) and, for `render`, the fitted rain over held-out clean frames. A
   network is kept only where every earlier domain stays within `domain_tolerance` dB of its start (their mean
   within `old_tolerance`), dry frames (whole frames, as the runtime de-rains them: the network's dry-frame bypass
   decides) within `dry_tolerance` or above `DRY_FLOOR` dB, and as 80-pixel crops (where the bypass is blind)
   within `dry_tolerance`, and the held-out footage scores no worse than the
   start; among those the best on the method's own measure. If none is, the start is kept and the report says so.

Writes `<out>/adapted.pt` (a checkpoint of the start's network), `report.md` with before/after frames of the
held-out footage (`report.jpg`), `summary.json`, `rain.json` (the fitted memory), `validation.csv`; resumable
(`resume="auto"`), within a time budget (`minutes`, the fit included).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from derain.cli import UsageError
from derain.config import config_to_dict
from derain.data.footage import list_clips, read_clip
from derain.data.io import to_tensor, write_image
from derain.data.rain import AIRLIGHT, compose_rain, domain_seed, render_rain, render_rain_layer
from derain.data.scenes import SceneSampler
from derain.models import load_model, prediction, save_checkpoint, stage_outputs
from derain.outputs import atomic_write_text
from derain.quality.metrics import psnr
from derain.quality.rain_similarity import RAIN_LEVEL, distances, rain_stats
from derain.quality.scorers import RainCNNScorer, train_rain_classifier
from derain.train.loop import LAST, Plan, Step, fit
from derain.train.losses import restoration_loss
from derain.train.rain_memory import CANVAS, FOOTAGE_SPACE, ParametricRain, fit_parametric
from derain.train.session import Session
from derain.train.shipped import ShippedConfig, default_domains, render_batch

log = logging.getLogger(__name__)

METHODS = ("render", "reward", "mix")
MIN_RAIN = 0.002  # share of pixels the start network must change for footage to count as rainy
DRY_FLOOR = 50.0  # dB: dry frames this close to unchanged (0.8 grey levels RMS) pass the guard whatever the start


@dataclass(frozen=True)
class AdaptConfig:
    rainy: tuple[str, ...]
    out: str
    weights: str = "builtin"
    dry: tuple[str, ...] = ()
    method: str = "reward"  # the one whose kept networks held every seen domain within 0.3 dB (adapt.md)
    every_seconds: float = 0.5  # at most one frame per this much video
    per_clip: int = 48  # frames sampled per clip at most, spread over it
    max_frames: int = 192  # frames kept over all rainy clips (and over all dry clips)
    holdout: float = 0.25  # share of the clips (or of one clip's frames) held out for the guard and the report
    minutes: float = 30.0  # the whole adaptation's time budget (fit included), over resumes
    iterations: int = 4000  # the cap
    batch_size: int = 12
    patch_size: int = 96
    new_fraction: float = 0.5  # share of each batch from the new camera (the rest replays the earlier rain)
    new_dry_fraction: float = 0.3  # of which dry frames of the camera (or built-in scenes) left dry: the camera's
    # rain comes with its veil, and a network that only ever sees it learns to lift a veil from every frame
    lr: float = 1e-4
    kd_weight: float = 0.0
    reward_crops: int = 192
    reward_weight: float = 1.0
    reward_every: int = 100
    fit_evaluations: int = 160
    fit_crops: int = 64
    fit_size: int = 64
    scorer_steps: int = 200
    val_every: int = 150
    val_per_domain: int = 24
    old_tolerance: float = 0.1
    domain_tolerance: float = 0.3
    dry_tolerance: float = 1.0
    photo_fraction: float = 0.5  # built-in scenes: share of training-photo crops (the rest dead-leaves)
    pool: int = 96  # dead-leaves scenes rendered for the built-in scenes
    seed: int = 0
    device: str = "auto"
    notes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")


# ----------------------------------------------------------------------------------------------- footage


@dataclass
class Footage:
    """Frames sampled from clips (RGB uint8), the clip each came from, and what could not be read."""

    frames: list[np.ndarray]
    clips: list[int]
    names: list[str]  # one per clip
    skipped: int = 0

    def split(self, holdout: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(training frames, held-out frames): the last clips (or, with one clip, its last frames)."""
        count = len(self.names)
        if count >= 2:
            held = max(1, int(round(count * holdout)))
            held_clips = set(range(count - held, count))
            train = [f for f, c in zip(self.frames, self.clips, strict=True) if c not in held_clips]
            kept = [f for f, c in zip(self.frames, self.clips, strict=True) if c in held_clips]
            if train and kept:
                return train, kept
        cut = max(1, int(round(len(self.frames) * (1 - holdout))))
        cut = min(cut, len(self.frames) - 1) if len(self.frames) > 1 else 1
        return self.frames[:cut], self.frames[cut:] or self.frames[:1]


def read_footage(inputs: tuple[str, ...], config: AdaptConfig, flag: str) -> Footage:
    clips = list_clips(inputs, flag)
    per_clip = max(2, min(config.per_clip, config.max_frames // max(1, len(clips))))
    footage = Footage([], [], [])
    for index, clip in enumerate(clips):
        frames, skipped = read_clip(clip, config.every_seconds, per_clip)
        footage.frames += frames
        footage.clips += [index] * len(frames)
        footage.names.append(clip)
        footage.skipped += skipped
    sizes = {f.shape[:2] for f in footage.frames}
    small = [s for s in sizes if min(s) < config.patch_size]
    if small:
        height, width = small[0]
        raise UsageError(f"{flag}: frames of {width}x{height} are smaller than the {config.patch_size}-pixel patches "
                         "adaptation trains on")  # fmt: skip
    return footage


def random_crops(frames: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> torch.Tensor:
    """`count` (count, 3, size, size) crops of random frames at random places (no flips: rain has a direction)."""
    out = []
    for _ in range(count):
        frame = frames[int(rng.integers(len(frames)))]
        top = int(rng.integers(0, frame.shape[0] - size + 1))
        left = int(rng.integers(0, frame.shape[1] - size + 1))
        out.append(to_tensor(np.ascontiguousarray(frame[top : top + size, left : left + size])))
    return torch.stack(out)


@torch.no_grad()
def run_network(network: nn.Module, images: torch.Tensor, batch: int = 32) -> torch.Tensor:
    was = network.training
    network.eval()
    device = next(network.parameters()).device
    out = torch.cat([prediction(network(images[i : i + batch].to(device))).clamp(0, 1).cpu()
                     for i in range(0, len(images), batch)])  # fmt: skip
    network.train(was)
    return out


def residual_rain(network: nn.Module, rainy: torch.Tensor) -> torch.Tensor:
    """What the network removes from rainy images, grey as replay measures rain: (N, 1, H, W) in [0, 1]."""
    return (rainy - run_network(network, rainy)).clamp(0, 1).amax(1, keepdim=True)


def rain_coverage(network: nn.Module, frames: list[np.ndarray], count: int = 8) -> float:
    """The share of pixels the network removes rain from (`RAIN_LEVEL`), over up to `count` whole frames spread over
    the footage (each cut to a multiple of 16 pixels)."""
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    shares = []
    for index in sorted(set(picks.tolist())):
        frame = to_tensor(frames[index])[None]
        height, width = frame.shape[-2] // 16 * 16, frame.shape[-1] // 16 * 16
        shares.append(float((residual_rain(network, frame[..., :height, :width]) > RAIN_LEVEL).float().mean()))
    return float(np.mean(shares))


# ----------------------------------------------------------------------------------------------- the rain fit

# the fit's space on footage: the veil is measured (`footage_veil`), not fitted; fitted through the residual, the
# veil traded against the streaks' brightness and density and came out 2-3x the true one (benchmarks/results/adapt.md)
CAMERA_SPACE = tuple(entry for entry in FOOTAGE_SPACE if entry[0] not in ("haze", "haze_depth"))
VEIL_WINDOW = 15  # pixels of the dark channel's minimum filter (wider than a streak, narrower than the scene)
VEIL_PERCENTILE = 10


def dark_level(frames: list[np.ndarray]) -> float:
    """The median over frames of a low percentile of the dark channel (per pixel the darkest colour channel, then
    the darkest pixel within VEIL_WINDOW): streaks are thinner than the window and leave it; a veil lifts it."""
    kernel = np.ones((VEIL_WINDOW, VEIL_WINDOW), np.uint8)
    levels = [np.percentile(cv2.erode(frame.min(axis=2), kernel), VEIL_PERCENTILE) / 255.0 for frame in frames]
    return float(np.median(levels))


def footage_veil(rainy: list[np.ndarray], dry: list[np.ndarray] | None) -> dict[str, float]:
    """The rain's veil (1 - transmission, as the renderer's `haze`) from the footage's dark channels: a veil of
    airlight A over a scene moves its dark level d to d (1 - h) + A h, so h = (rainy - dry) / (A - dry), with the
    dry footage's level where there is dry footage, else the dark-channel prior (a dry outdoor scene's dark level is
    about 0; on the benchmark's dry clips it is 0.01-0.04, so the veil then comes out a little high). A is the
    renderer's mean airlight. The veil's fall with depth is not measured (it is kept at 0)."""
    airlight = float(np.mean(AIRLIGHT))
    rainy_level = dark_level(rainy)
    dry_level = dark_level(dry) if dry else 0.0
    haze = float(np.clip((rainy_level - dry_level) / (airlight - dry_level), 0.0, 0.35))
    return {"haze": haze, "rainy_dark_level": rainy_level, "dry_dark_level": dry_level if dry else None,
            "airlight": airlight}  # fmt: skip



def render_camera_rain(rain: ParametricRain, clean: torch.Tensor, seed: int) -> torch.Tensor:
    """`rain` over clean crops, drawn on a canvas CANVAS times the crop's side and cropped at its centre (as the
    footage's crops come out of larger frames), composed as the renderer composes; deterministic by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    count, side = len(clean), clean.shape[-1]
    canvas, margin = CANVAS * side, (CANVAS - 1) * side // 2
    domain = rain.domain()
    layers = render_rain_layer(count, canvas, canvas, domain, generator, torch.device("cpu"))
    rain_layer, haze, splashes = (t[..., margin : margin + side, margin : margin + side] for t in layers)
    return compose_rain(clean, rain_layer, haze, splashes, domain, generator)


class FootageTarget:
    """What a parametric memory must match on footage with no clean twins: the statistics of the rain the start
    network removes from the rainy frames; a candidate is rendered over clean crops and passed through the same
    network, so whatever the network misses is missed on both sides."""

    def __init__(self, network: nn.Module, rainy: torch.Tensor, clean: torch.Tensor, seed: int = 0) -> None:
        self.network, self.clean, self.seed = network, clean, seed
        self.reference = rain_stats(residual_rain(network, rainy))

    def rainy(self, rain: ParametricRain, seed: int | None = None) -> torch.Tensor:
        """`rain` over the target's clean crops (`render_camera_rain`)."""
        return render_camera_rain(rain, self.clean, self.seed + 7 if seed is None else seed)

    def distance(self, rain: ParametricRain, seed: int | None = None) -> dict[str, float]:
        return distances(rain_stats(residual_rain(self.network, self.rainy(rain, seed))), self.reference)


# ----------------------------------------------------------------------------------------------- training


class AdaptStep(Step):
    """Pairs (new rain and replayed old rain) -> restoration loss, + distillation on the replayed part, + the
    self-reinforcement loss toward the rewards of footage crops (reward and mix)."""

    def __init__(self, network: nn.Module, teacher: nn.Module, config: AdaptConfig, device: torch.device,
                 footage_crops: torch.Tensor | None, scorer: RainCNNScorer | None) -> None:  # fmt: skip
        self.network, self.teacher, self.config, self.device = network, teacher, config, device
        self.optimizer = torch.optim.Adam(network.parameters(), lr=config.lr)
        self.networks, self.optimizers = {"network": network}, {"network": self.optimizer}
        self.crops, self.scorer = footage_crops, scorer
        self.rewards: torch.Tensor | None = None
        self.scores: torch.Tensor | None = None
        self.replaced = 0
        if footage_crops is not None:
            self.rewards = run_network(teacher, footage_crops)
            self.scores = scorer.score(self.rewards)

    def __call__(self, batch: dict, step: int) -> dict[str, float]:
        row = {}
        loss = torch.zeros((), device=self.device)
        if "rainy" in batch:
            rainy, clean = batch["rainy"].to(self.device), batch["clean"].to(self.device)
            outputs = stage_outputs(self.network(rainy))
            pair_loss = restoration_loss(outputs, clean)
            loss = loss + pair_loss
            row["pairs"] = pair_loss.item()
            old = batch["old"].to(self.device)
            if self.config.kd_weight > 0 and bool(old.any()):
                with torch.no_grad():
                    taught = prediction(self.teacher(rainy[old]))
                kd = F.l1_loss(outputs[0][old], taught)
                loss = loss + self.config.kd_weight * kd
                row["kd"] = kd.item()
        if "footage" in batch:
            index = batch["footage"]
            out = prediction(self.network(self.crops[index].to(self.device)))
            reinforce = F.l1_loss(out, self.rewards[index].to(self.device))
            loss = loss + self.config.reward_weight * reinforce
            row["reinforce"] = reinforce.item()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        row["loss"] = loss.item()
        return row

    def after(self, step: int) -> None:
        """Reward recycling: every `reward_every` steps the network's outputs of the footage crops replace the
        rewards they score better than (lower rain score)."""
        if self.crops is None or step % self.config.reward_every:
            return
        outputs = run_network(self.network, self.crops)
        scores = self.scorer.score(outputs)
        better = scores < self.scores
        self.rewards[better], self.scores[better] = outputs[better], scores[better]
        self.replaced += int(better.sum())

    def state(self) -> dict[str, Any]:
        if self.rewards is None:
            return {}
        return {"rewards": (self.rewards * 255).round().to(torch.uint8), "scores": self.scores,
                "replaced": self.replaced}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        if "rewards" in state and self.rewards is not None:
            self.rewards = state["rewards"].float() / 255
            self.scores, self.replaced = state["scores"], int(state["replaced"])


def _shipped_replay(config: AdaptConfig) -> ShippedConfig:
    return ShippedConfig(photo_fraction=config.photo_fraction, pool=config.pool, seed=config.seed,
                         patch_size=config.patch_size)  # fmt: skip


@dataclass
class Validation:
    """Fixed validation sets: rendered earlier domains and dry crops, held-out footage crops, and (render) the
    fitted rain over held-out clean crops."""

    old: dict[str, tuple[torch.Tensor, torch.Tensor]]
    dry: list[torch.Tensor]  # whole frames
    dry_crops: torch.Tensor
    footage: torch.Tensor
    fitted: tuple[torch.Tensor, torch.Tensor] | None


def _psnr(network: nn.Module, rainy: torch.Tensor, clean: torch.Tensor, cap: float = 100.0) -> float:
    out = (run_network(network, rainy) * 255).round() / 255
    return float(psnr(out, clean).clamp(max=cap).mean())


def _pooled_psnr(network: nn.Module, frames: list[torch.Tensor]) -> float:
    """PSNR of the squared error pooled over whole frames (a frame passed unchanged or not moves a mean of
    per-frame PSNRs, capped at 100, by tens of dB; the pooled error moves by what changed)."""
    errors = [float((((run_network(network, frame[None]) * 255).round() / 255 - frame[None]) ** 2).mean())
              for frame in frames]  # fmt: skip
    mse = float(np.mean(errors))
    return 100.0 if mse == 0 else min(100.0, -10 * math.log10(mse))


def validate(network: nn.Module, val: Validation, scorer: RainCNNScorer) -> dict[str, float]:
    scores = {f"old_{name}": _psnr(network, *pair) for name, pair in val.old.items()}
    old = float(np.mean(list(scores.values())))
    scores.update(old_mean=old, dry_psnr=_pooled_psnr(network, val.dry),
                  dry_crops_psnr=_psnr(network, val.dry_crops, val.dry_crops, cap=60.0),
                  footage_rain=float(scorer.score(run_network(network, val.footage)).mean()))  # fmt: skip
    if val.fitted is not None:
        scores["fitted_psnr"] = _psnr(network, *val.fitted)
    return scores


def eligible(scores: dict[str, float], start: dict[str, float], config: AdaptConfig) -> list[str]:
    """Why a validated network may not be kept ([] when it may)."""
    why = []
    for key, value in scores.items():
        if key.startswith("old_") and key != "old_mean" and value < start[key] - config.domain_tolerance:
            why.append(f"{key[4:]} {value - start[key]:+.2f} dB")
    if scores["old_mean"] < start["old_mean"] - config.old_tolerance:
        why.append(f"earlier domains {scores['old_mean'] - start['old_mean']:+.2f} dB")
    if scores["dry_psnr"] < min(start["dry_psnr"] - config.dry_tolerance, DRY_FLOOR):
        why.append(f"dry frames {scores['dry_psnr'] - start['dry_psnr']:+.2f} dB")
    if scores["dry_crops_psnr"] < start["dry_crops_psnr"] - config.dry_tolerance:  # where the frame bypass is blind
        why.append(f"dry crops {scores['dry_crops_psnr'] - start['dry_crops_psnr']:+.2f} dB")
    if scores["footage_rain"] > start["footage_rain"]:
        why.append(f"held-out footage rain score {scores['footage_rain']:.3f} > {start['footage_rain']:.3f}")
    return why


def measure(scores: dict[str, float], config: AdaptConfig) -> float:
    """The method's own measure (higher is better): the fitted rain's PSNR where there is a fit, else the held-out
    footage's rain score, negated."""
    return scores["fitted_psnr"] if config.method != "reward" else -100.0 * scores["footage_rain"]


def adapt(config: AdaptConfig, resume: str | None = None) -> dict:
    """Adapt; returns the summary (also `<out>/summary.json`); the network is `<out>/adapted.pt`."""
    from derain.builtin import resolve_weights
    from derain.models.device import resolve_device

    started = time.perf_counter()
    out = Path(config.out)
    device = resolve_device(config.device)
    session = Session(device)
    weights = resolve_weights(config.weights)
    teacher = load_model(weights).to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    network = load_model(weights).to(device).train()
    spec = getattr(network, "spec", {})
    if spec.get("name") in ("realtime_temporal",):
        raise UsageError(f"{config.weights} is a video de-rainer (realtime_temporal); adapt its per-frame network")

    rainy = read_footage(config.rainy, config, "--rainy")
    dry = read_footage(config.dry, config, "--dry") if config.dry else None
    rainy_train, rainy_held = rainy.split(config.holdout)
    dry_train, dry_held = dry.split(config.holdout) if dry is not None else (None, None)
    log.info("footage: %d rainy frames from %d clip(s) (%d held out)%s", len(rainy.frames), len(rainy.names),
             len(rainy_held), f", {len(dry.frames)} dry frames" if dry else "")  # fmt: skip

    sampler = SceneSampler(config.photo_fraction, pool=config.pool, seed=config.seed)
    # validation on training-photo crops (camera footage looks like photos, not like dead-leaves scenes; the test
    # photos are not among them)
    val_sampler = SceneSampler(1.0, pool=0, seed=config.seed + 1000)

    def clean_crops(frames: list[np.ndarray] | None, count: int, size: int, generator: np.random.Generator,
                    scenes: SceneSampler) -> torch.Tensor:  # fmt: skip
        if frames:
            return random_crops(frames, count, size, generator)
        return torch.stack([to_tensor(scenes.sample(size, generator)[0]) for _ in range(count)])

    # is there rain the start network sees at all? (whole frames, as the runtime de-rains them: a dry frame is
    # passed unchanged, where a crop of it may not be)
    coverage = rain_coverage(teacher, rainy.frames)
    probe = random_crops(rainy_train, config.fit_crops, config.fit_size, np.random.default_rng([config.seed, 3]))
    if coverage < MIN_RAIN:
        raise UsageError(f"--rainy shows no rain the de-rainer sees: it changes {100 * coverage:.2f} % of the "
                         f"pixels of {len(rainy.frames)} sampled frames (rainy footage: above {100 * MIN_RAIN:.1f} %); "
                         "are these dry frames? give them as --dry")  # fmt: skip

    out.mkdir(parents=True, exist_ok=True)  # nothing is written before the footage is known to be usable
    # the rain score of the guard (and of the rewards): the footage's rain against clean frames
    scorer_path = out / "scorer.pt"
    clean_list = list(clean_crops(dry_train, 96, config.patch_size, np.random.default_rng([config.seed, 5]), sampler))
    if scorer_path.is_file():
        from derain.models.registry import load_torch_file

        scorer = RainCNNScorer.from_state(load_torch_file(scorer_path, "rain scorer"))
    else:
        rainy_list = list(random_crops(rainy_train, 96, config.patch_size, np.random.default_rng([config.seed, 6])))
        scorer = RainCNNScorer(train_rain_classifier(clean_list, rainy_list, steps=config.scorer_steps,
                                                     seed=config.seed))  # fmt: skip
        scorer.save(scorer_path)

    # the parametric memory of the new rain (render, mix)
    fitted_rain, fit_record = None, {}
    if config.method in ("render", "mix"):
        rain_path = out / "rain.json"
        if rain_path.is_file():
            fitted_rain = ParametricRain.load(rain_path)
            fit_record = json.loads(rain_path.read_text())
            fit_record.pop("parametric_rain", None)
        else:
            clean = clean_crops(dry_train, config.fit_crops, config.fit_size, np.random.default_rng([config.seed, 4]),
                                sampler)  # fmt: skip
            target = FootageTarget(teacher, probe, clean, seed=config.seed)
            veil = footage_veil(rainy_train, dry_train)
            log.info("fitting the new rain (%d renderer evaluations; the veil measured: %.3f)",
                     config.fit_evaluations, veil["haze"])  # fmt: skip
            fitted_rain, fit_record = fit_parametric(target, config.fit_evaluations, config.seed, space=CAMERA_SPACE,
                                                     fixed={"haze": veil["haze"], "haze_depth": 0.0})  # fmt: skip
            fit_record["veil"] = veil
            held = random_crops(rainy_held, config.fit_crops, config.fit_size, np.random.default_rng([config.seed, 8]))
            check = FootageTarget(teacher, held, clean, seed=config.seed + 100)
            fit_record["held_out_distance"] = check.distance(fitted_rain, seed=config.seed + 200)
            fitted_rain.save(rain_path, **fit_record)
            _fit_figure(target, fitted_rain, probe, out / "rain.png")
            log.info("fitted rain: distance %.3f (held-out footage %.3f) in %.0f s", fit_record["objective"],
                     fit_record["held_out_distance"]["distance"], fit_record["seconds"])  # fmt: skip

    # validation sets
    replay = _shipped_replay(config)
    domains = default_domains()
    old = {}
    for name in domains:
        scenes = torch.stack([to_tensor(val_sampler.sample(config.patch_size, np.random.default_rng(
            [config.seed, domain_seed("adapt-val", name), i]))[0]) for i in range(config.val_per_domain)])  # fmt: skip
        old[name] = (render_rain(scenes, name, domain_seed(config.seed, "adapt-val", name)), scenes)
    if dry_held:  # whole frames (cut to a multiple of 16), as the runtime de-rains them
        picks = np.linspace(0, len(dry_held) - 1, min(6, len(dry_held))).round().astype(int)
        whole = [dry_held[i] for i in sorted(set(picks.tolist()))]
    else:
        scene_rng = np.random.default_rng([config.seed, 9])
        whole = [val_sampler.sample(192, scene_rng, width=320)[0] for _ in range(6)]
    dry_val = [to_tensor(f[: f.shape[0] // 16 * 16, : f.shape[1] // 16 * 16]) for f in whole]
    dry_crops = clean_crops(dry_held, 48, 80, np.random.default_rng([config.seed, 14]), val_sampler)
    footage_val = random_crops(rainy_held, 64, config.patch_size, np.random.default_rng([config.seed, 10]))
    fitted_val = None
    if fitted_rain is not None:
        clean = clean_crops(dry_held, 48, config.patch_size, np.random.default_rng([config.seed, 12]), val_sampler)
        fitted_val = (render_camera_rain(fitted_rain, clean, config.seed + 301), clean)
    val = Validation(old, dry_val, dry_crops, footage_val, fitted_val)
    start_path = out / "start.json"
    if start_path.is_file():
        start = json.loads(start_path.read_text())
    else:
        start = validate(teacher, val, scorer)
        atomic_write_text(start_path, json.dumps(start, indent=2))

    crops = None
    if config.method in ("reward", "mix"):
        crops = random_crops(rainy_train, config.reward_crops, config.patch_size,
                             np.random.default_rng([config.seed, 13]))  # fmt: skip
    step = AdaptStep(network, teacher, config, device, crops, scorer if crops is not None else None)
    camera_count = int(round(config.batch_size * config.new_fraction))
    dry_count = int(round(camera_count * config.new_dry_fraction))
    new_count = camera_count - dry_count if fitted_rain is not None else 0
    old_count = config.batch_size - new_count - dry_count

    def data(start_step: int):
        for index in itertools.count(start_step):
            generator = np.random.default_rng([config.seed, domain_seed("adapt", index)])
            batch: dict[str, Any] = {}
            rainy_parts, clean_parts, old_flags = [], [], []
            if new_count:
                clean = clean_crops(dry_train, new_count, config.patch_size, generator, sampler)
                rainy_parts.append(render_camera_rain(fitted_rain, clean, domain_seed(config.seed, "adapt-new", index)))
                clean_parts.append(clean)
                old_flags += [False] * new_count
            if dry_count:
                clean = clean_crops(dry_train, dry_count, config.patch_size, generator, sampler)
                rainy_parts.append(clean)
                clean_parts.append(clean)
                old_flags += [False] * dry_count
            if old_count:
                wet, dry_clean, _ = render_batch(sampler, domains, replay, ("adapt", index), old_count,
                                                 config.patch_size)  # fmt: skip
                rainy_parts.append(wet)
                clean_parts.append(dry_clean)
                old_flags += [True] * old_count
            batch.update(rainy=torch.cat(rainy_parts), clean=torch.cat(clean_parts), old=torch.tensor(old_flags))
            if crops is not None:
                batch["footage"] = torch.from_numpy(generator.integers(0, len(crops), config.batch_size // 2))
            yield batch

    spent_before_training = time.perf_counter() - started
    summary_path = out / "summary.json"
    previous_seconds = json.loads(summary_path.read_text()).get("setup_seconds", 0.0) if summary_path.is_file() else 0.0
    budget = max(60.0, config.minutes * 60 - spent_before_training - previous_seconds)

    def judged(net: nn.Module) -> dict[str, Any]:
        scores = validate(net, val, scorer)
        why = eligible(scores, start, config)
        return {"metric": measure(scores, config) if not why else -1e6, **scores, "kept_out": "; ".join(why)}

    plan = Plan(total=config.iterations, schedule=lambda _: 1.0, data=data, desc=f"adapt ({config.method})",
                log_every=50, checkpoint_every=config.val_every, validate=judged, validate_every=config.val_every,
                max_seconds=budget, start_best=measure(start, config), config=config_to_dict(config))  # fmt: skip
    resume_path = out / LAST if resume == "auto" and (out / LAST).is_file() else None
    outcome = fit(step, plan, out, session, resume=resume_path)
    kept = (out / "best.pt").is_file()
    final = load_model(out / "best.pt") if kept else load_model(weights)
    adapted_scores = validate(final.to(device), val, scorer)
    save_checkpoint(out / "adapted.pt", final.cpu(), adapted_from=str(weights), adapt_method=config.method,
                    adapted=kept)  # fmt: skip
    summary = {
        "method": config.method, "kept": "adapted" if kept else "start",
        "best_step": outcome.best.get("step", 0), "steps": outcome.step, "stopped": outcome.stopped,
        "seconds": round(time.perf_counter() - started + previous_seconds, 1),
        "setup_seconds": round(spent_before_training + previous_seconds, 1),
        "training_seconds": round(outcome.seconds, 1),
        "footage": {"rainy_frames": len(rainy.frames), "rainy_clips": len(rainy.names),
                    "held_out_frames": len(rainy_held), "dry_frames": len(dry.frames) if dry else 0,
                    "skipped_frames": rainy.skipped + (dry.skipped if dry else 0), "rain_coverage": coverage},
        "start": start, "adapted": adapted_scores, "fit": fit_record,
        "rain": asdict(fitted_rain) if fitted_rain is not None else None,
        "replaced_rewards": step.replaced, "config": config_to_dict(config),
    }  # fmt: skip
    atomic_write_text(summary_path, json.dumps(summary, indent=2, default=str))
    write_report(out, summary, weights, out / "adapted.pt", rainy_held)
    return summary


def _fit_figure(target: FootageTarget, rain: ParametricRain, probe: torch.Tensor, path: Path) -> None:
    """The footage's rain as the start network removes it (top) beside the fitted memory's, through the same
    network (bottom)."""
    top = residual_rain(target.network, probe[:8])[:, 0]
    bottom = residual_rain(target.network, target.rainy(rain, seed=target.seed + 500)[:8])[:, 0]
    strips = [torch.cat(list(row), dim=1) for row in (top, bottom)]
    image = (torch.cat(strips, dim=0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    write_image(path, np.repeat(image[..., None], 3, axis=2))


def _frame_panel(frames: list[np.ndarray], start: Path, adapted: Path, count: int = 3) -> np.ndarray:
    """Rows of held-out frames: rainy | start | adapted, each de-rained whole (shrunk to 1440 pixels wide for the
    page)."""
    from derain.models import run_padded

    rows = []
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    first, second = load_model(start), load_model(adapted)
    for index in sorted(set(picks.tolist())):
        frame = frames[index]
        with torch.no_grad():
            outputs = [(run_padded(net, to_tensor(frame)[None])[0].clamp(0, 1) * 255).round().byte()
                       .permute(1, 2, 0).numpy() for net in (first, second)]  # fmt: skip
        row = np.concatenate([frame, *outputs], axis=1)
        scale = min(1.0, 1440 / row.shape[1])
        rows.append(cv2.resize(row, (int(row.shape[1] * scale), int(row.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA))  # fmt: skip
    width = max(r.shape[1] for r in rows)
    return np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)


def write_report(out: Path, summary: dict, start: Path, adapted: Path, held: list[np.ndarray]) -> None:
    write_image(out / "report.jpg", _frame_panel(held, start, adapted))
    s, a = summary["start"], summary["adapted"]
    lines = [
        "# derain-adapt",
        "",
        f"Method: `{summary['method']}`; kept: **{summary['kept']}**"
        + (f" (validation at step {summary['best_step']})" if summary["kept"] == "adapted" else
           " (no adapted network passed the guard: the start network is written as adapted.pt)"),
        f"Footage: {summary['footage']['rainy_frames']} rainy frames from {summary['footage']['rainy_clips']} clip(s), "
        f"{summary['footage']['held_out_frames']} held out; {summary['footage']['dry_frames']} dry frames; "
        f"{summary['footage']['skipped_frames']} frames did not decode. {summary['steps']} steps, "
        f"{summary['seconds']:.0f} s ({summary['stopped']}).",
        "",
        "| measure | start | adapted | change |",
        "|---|---|---|---|",
        f"| held-out footage rain score (lower: less rain seen) | {s['footage_rain']:.3f} | {a['footage_rain']:.3f} | "
        f"{a['footage_rain'] - s['footage_rain']:+.3f} |",
    ]  # fmt: skip
    if "fitted_psnr" in s:
        lines.append(f"| fitted rain over held-out clean frames, PSNR | {s['fitted_psnr']:.2f} | "
                     f"{a['fitted_psnr']:.2f} | {a['fitted_psnr'] - s['fitted_psnr']:+.2f} |")  # fmt: skip
    lines.append(f"| earlier domains, mean PSNR | {s['old_mean']:.2f} | {a['old_mean']:.2f} | "
                 f"{a['old_mean'] - s['old_mean']:+.2f} |")  # fmt: skip
    for key in sorted(k for k in s if k.startswith("old_") and k != "old_mean"):
        lines.append(f"| {key[4:]} PSNR | {s[key]:.2f} | {a[key]:.2f} | {a[key] - s[key]:+.2f} |")
    lines.append(f"| dry frames, whole (as the runtime runs them), PSNR against themselves | {s['dry_psnr']:.2f} | "
                 f"{a['dry_psnr']:.2f} | {a['dry_psnr'] - s['dry_psnr']:+.2f} |")  # fmt: skip
    lines.append(f"| dry crops (80 px, capped at 60 dB), PSNR against themselves | {s['dry_crops_psnr']:.2f} | "
                 f"{a['dry_crops_psnr']:.2f} | {a['dry_crops_psnr'] - s['dry_crops_psnr']:+.2f} |")  # fmt: skip
    if summary.get("rain"):
        lines += ["", f"Fitted rain ({summary['fit'].get('seconds', 0):.0f} s; distance "
                  f"{summary['fit'].get('objective', float('nan')):.3f}, on held-out footage "
                  f"{summary['fit'].get('held_out_distance', {}).get('distance', float('nan')):.3f}; the veil "
                  "measured from the dark channels of the rainy and dry footage, not fitted: "
                  f"{summary['fit'].get('veil', {}).get('haze', float('nan')):.3f}): "
                  f"`{json.dumps(summary['rain'])}`", "",
                  "![the footage's rain | the fitted rain, as the start network removes them](rain.png)"]  # fmt: skip
    lines += ["", "![held-out frames: rainy | start | adapted](report.jpg)", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))


# ----------------------------------------------------------------------------------------------- the CLI

EXIT_STATUSES = ("exit status: 0 adapted (or the start kept, and said so); 2 bad arguments or footage (nothing "
                 "written); 1 a bug")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derain-adapt",
        description="Adapt a de-rainer to a new camera's rain from unpaired footage (rainy clips, optionally dry "
        "ones), keeping the earlier rain: writes OUT/adapted.pt and OUT/report.md.\n\n" + EXIT_STATUSES,
        formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--weights", default="builtin", help="the de-rainer to adapt: a checkpoint or 'builtin' "
                        "(default: the shipped de-rainer)")  # fmt: skip
    parser.add_argument("--rainy", nargs="+", required=True, help="rainy footage: video files, folders of videos, "
                        "folders of frames (one clip each), or folders of such folders")  # fmt: skip
    parser.add_argument("--dry", nargs="*", default=[], help="dry footage of the same camera (optional): clean "
                        "frames to render the learned rain over (default: the built-in scenes)")  # fmt: skip
    parser.add_argument("--out", required=True, help="the run folder (must be empty, unless --resume auto)")
    parser.add_argument("--method", choices=METHODS, default=AdaptConfig.method, help="render: fit the rain and "
                        "train on rendered pairs; reward: reward recycling and self-reinforcement on the footage; "
                        "mix: both (default: %(default)s, benchmarks/results/adapt.md)")  # fmt: skip
    parser.add_argument("--minutes", type=float, default=AdaptConfig.minutes, help="time budget, over resumes "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--resume", choices=("auto", "none"), default="none", help="auto: continue the run in --out")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a non-empty --out")
    parser.add_argument("--every-seconds", type=float, default=AdaptConfig.every_seconds, help="sample at most one "
                        "frame per this many seconds of video (default: %(default)s)")  # fmt: skip
    parser.add_argument("--per-clip", type=int, default=AdaptConfig.per_clip, help="frames per clip at most "
                        "(default: %(default)s)")  # fmt: skip
    parser.add_argument("--kd-weight", type=float, default=AdaptConfig.kd_weight, help="distillation toward the "
                        "start network on the replayed rain (default: %(default)s)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def check_arguments(args: Any) -> AdaptConfig:
    """Every problem with the arguments at once, before any frame is read."""
    from derain.builtin import resolve_weights
    from derain.cli import Problems, number_problems
    from derain.models.device import resolve_device
    from derain.outputs import output_problems

    problems = Problems()
    problems.extend(number_problems({"--minutes": args.minutes, "--every-seconds": args.every_seconds}, minimum=0.01))
    problems.extend(number_problems({"--per-clip": args.per_clip}, minimum=2))
    problems.extend(number_problems({"--kd-weight": args.kd_weight}, minimum=0))
    problems.attempt(lambda: resolve_device(args.device))
    model = problems.attempt(lambda: load_model(resolve_weights(args.weights)))
    if model is not None and getattr(model, "spec", {}).get("name") == "realtime_temporal":
        problems.add(f"--weights {args.weights} is a video de-rainer (realtime_temporal); adapt a per-frame one")
    problems.attempt(lambda: list_clips(tuple(args.rainy), "--rainy"))
    if args.dry:
        problems.attempt(lambda: list_clips(tuple(args.dry), "--dry"))
    resuming = args.resume == "auto" and (Path(args.out) / LAST).is_file()
    problems.extend(output_problems(args.out, [*args.rainy, *args.dry], overwrite=args.overwrite or resuming))
    problems.raise_if_any()
    return AdaptConfig(rainy=tuple(args.rainy), dry=tuple(args.dry), out=args.out, weights=args.weights,
                       method=args.method, minutes=args.minutes, every_seconds=args.every_seconds,
                       per_clip=args.per_clip, kd_weight=args.kd_weight, device=args.device,
                       seed=args.seed)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import sys

    from derain.builtin import describe_builtin, is_builtin
    from derain.cli import EXIT_OK, run_main, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging()

    def body() -> int:
        if is_builtin(args.weights):
            print(f"derain-adapt: adapting {describe_builtin(args.weights)}", file=sys.stderr)
        config = check_arguments(args)
        summary = adapt(config, resume=args.resume)
        start, adapted = summary["start"], summary["adapted"]
        print(f"kept: {summary['kept']} ({summary['steps']} steps, {summary['seconds']:.0f} s); "
              f"held-out footage rain score {start['footage_rain']:.3f} -> {adapted['footage_rain']:.3f}; "
              f"earlier domains {adapted['old_mean'] - start['old_mean']:+.2f} dB; "
              f"dry frames {adapted['dry_psnr'] - start['dry_psnr']:+.2f} dB")  # fmt: skip
        print(f"wrote {Path(config.out) / 'adapted.pt'} and {Path(config.out) / 'report.md'}")
        return EXIT_OK

    return run_main("derain-adapt", body)


if __name__ == "__main__":
    raise SystemExit(main())
