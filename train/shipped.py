"""The shipped de-rainer's recipe: a network trained for the real world rather than for one renderer (data v2).

Every training batch is rendered on the fly, so the data never repeats:

- clean patches from `SceneSampler` (dead-leaves scenes mixed with the training photos, `photo_fraction`);
- per patch, one of: no rain at all (`dry_fraction`: the network learns to leave dry frames alone), the
  `randomized` domain (`randomized_fraction`: veil, screen blending, defocused near streaks, splashes, the full
  angle range, tinted streaks), or one of the training domains (default: every dataset domain and `real_like`);
  the streak scale is drawn per patch from `scale_range` (cameras of any resolution);
- the `holdout` domains (default `storm`) are never rendered: they measure generalization.

Training stops at a plateau, defined as: the validation PSNR (a fixed set of training-scene crops with the
training rain, never the test scenes) has not risen by `plateau_gain` dB within `plateau_window` iterations; the
first `lr_drops` plateaus halve the learning rate and restart the window, the next one stops the run (or
`max_iterations` / `max_minutes`, whichever comes first). The recipe is `SupervisedStep` on the one loop (`fit`):
`validation.csv` logs every validation, `log.csv` the losses, and `summary.json` says where and why the run
stopped. `best.pt` (the best validation) is the result; `last.pt` resumes (`--resume auto`).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from derain.config import config_to_dict, save_resolved
from derain.data.io import to_tensor
from derain.data.rain import RAIN_DOMAINS, UNSEEN_DOMAINS, domain_seed, get_domain, render_rain
from derain.data.scenes import SceneSampler
from derain.models import build_model, load_weights, read_checkpoint, stage_outputs
from derain.models.registry import ModelSpec
from derain.outputs import atomic_write_text
from derain.quality.metrics import psnr
from derain.train.loop import Plan, Plateau, fit, warmup_constant
from derain.train.session import Session
from derain.train.state import resume_file
from derain.train.supervised import SupervisedStep

log = logging.getLogger(__name__)


def default_domains() -> tuple[str, ...]:
    """Every dataset domain, plus `real_like`."""
    return tuple(n for n in RAIN_DOMAINS if get_domain(n).role == "dataset") + ("real_like",)


@dataclass(frozen=True)
class ShippedConfig:
    model: ModelSpec = ModelSpec("realtime")
    out: str = "runs/shipped_realtime"
    domains: tuple[str, ...] = ()  # () = default_domains()
    holdout: tuple[str, ...] = ("storm",)
    randomized_fraction: float = 0.4
    dry_fraction: float = 0.15
    photo_fraction: float = 0.0  # dead-leaves only (benchmarks/results/scene_mix.md)
    scale_range: tuple[float, ...] = (0.7, 1.3)
    pool: int = 800  # dead-leaves scenes rendered once (cached in the run folder)
    patch_size: int = 96
    batch_size: int = 12
    lr: float = 5e-4
    warmup_iterations: int = 100
    edge_weight: float = 0.05
    val_every: int = 250
    val_images: int = 96
    plateau_window: int = 1500
    plateau_gain: float = 0.05
    lr_drops: int = 2
    max_iterations: int = 60000
    max_minutes: float = 0.0  # 0: no limit
    seed: int = 0
    device: str = "auto"
    init: str = ""  # start from these weights (a checkpoint of the same network) instead of from scratch
    notes: dict = field(default_factory=dict)


def check(config: ShippedConfig) -> tuple[str, ...]:
    """The training domains; a held-out domain in them, an unknown name or a bad fraction is an error."""
    domains = config.domains or default_domains()
    for name in (*domains, *config.holdout):
        get_domain(name)
    leaked = sorted(set(domains) & set(config.holdout))
    if leaked:
        raise ValueError(f"held-out domains {leaked} are also training domains")
    if "randomized" in config.holdout:
        raise ValueError("'randomized' is the training-only rain; it cannot be held out")
    if not 0 <= config.dry_fraction + config.randomized_fraction <= 1:
        raise ValueError("dry_fraction + randomized_fraction must be within [0, 1]")
    if config.patch_size % 16 or len(config.scale_range) != 2:
        raise ValueError("patch_size must be a multiple of 16 and scale_range two numbers")
    return domains


def render_batch(
    sampler: SceneSampler, domains: tuple[str, ...], config: ShippedConfig, key: tuple, count: int, size: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """`count` (rainy, clean) patches, deterministic by `key`, and the rain each got ("dry" for none)."""
    rng = np.random.default_rng([config.seed, domain_seed("shipped-scenes", *key)])
    generator = torch.Generator().manual_seed(domain_seed(config.seed, "shipped", *key))
    rainy, clean, kinds = [], [], []
    for _ in range(count):
        image = to_tensor(sampler.sample(size, rng)[0])
        draw = rng.random()
        if draw < config.dry_fraction:
            kind = "dry"
        elif draw < config.dry_fraction + config.randomized_fraction:
            kind = "randomized"
        else:
            kind = domains[int(rng.integers(len(domains)))]
        wet = (
            image
            if kind == "dry"
            else render_rain(image[None], kind, generator, scale=rng.uniform(*config.scale_range))[0]
        )
        rainy.append(wet)
        clean.append(image)
        kinds.append(kind)
    return torch.stack(rainy), torch.stack(clean), kinds


@torch.no_grad()
def validate(model: torch.nn.Module, val: tuple[torch.Tensor, torch.Tensor, list[str]], device: torch.device) -> dict:
    """Mean PSNR over the rainy validation images, and over the dry ones (output vs the clean input)."""
    model.eval()
    rainy, clean, kinds = val
    scores = []
    for start in range(0, len(rainy), 16):
        out = stage_outputs(model(rainy[start : start + 16].to(device)))[0].cpu()
        quantized = (out.clamp(0, 1) * 255).round() / 255  # as a saved image would be
        scores.append(psnr(quantized, clean[start : start + 16]))
    model.train()
    values = torch.cat(scores).clamp(max=100.0)  # an unchanged dry image is +inf: capped as the test set caps it
    dry = torch.tensor([k == "dry" for k in kinds])
    return {"val_psnr": float(values[~dry].mean()), "dry_psnr": float(values[dry].mean()) if dry.any() else
            float("nan")}  # fmt: skip


def scene_sampler(config: ShippedConfig, out: Path) -> SceneSampler:
    """The training scenes, with the dead-leaves pool cached in the run folder (a resume does not re-render it)."""
    sampler = SceneSampler(config.photo_fraction, pool=config.pool, seed=config.seed)
    cache = out / f"dead_leaves_pool_{config.pool}x{sampler.pool_size}_seed{config.seed}.npz"
    if cache.is_file():
        with np.load(cache) as data:
            sampler._pool = list(data["pool"])
    elif config.photo_fraction < 1.0:
        started = time.perf_counter()
        pool = sampler.pool
        np.savez_compressed(cache, pool=np.stack(pool))
        log.info("rendered %d dead-leaves scenes in %.0f s", len(pool), time.perf_counter() - started)
    return sampler


def train_shipped(config: ShippedConfig, resume: str | None = None) -> dict:
    """Train to a plateau; returns the summary (also `<out>/summary.json`); the weights are `<out>/best.pt`."""
    domains = check(config)
    out = Path(config.out)
    done = out / "summary.json"
    if resume == "auto" and done.is_file():
        previous = json.loads(done.read_text())
        if previous.get("stopped") == "plateau" and previous.get("config") == config_to_dict(config):
            log.info("%s already stopped at its plateau with this config; nothing to do", out)
            return previous
    session = Session.start(config.device)
    torch.manual_seed(config.seed)
    model = session.prepare(build_model(config.model.name, **config.model.kwargs))
    step = SupervisedStep(model, session, config.lr, config.edge_weight)
    path = resume_file(out, resume)  # batches are keyed by step, so a resume continues the same batch stream
    if config.init and path is None:
        load_weights(model, read_checkpoint(config.init)["weights"], source=config.init)
        log.info("starting from the weights of %s", config.init)
    save_resolved(config, out)
    sampler = scene_sampler(config, out)
    val_sampler = SceneSampler(config.photo_fraction, pool=48, seed=config.seed + 1000)
    val = render_batch(val_sampler, domains, config, ("validation",), config.val_images, 128)

    def data(start: int):
        for index in itertools.count(start):
            rainy, clean, _ = render_batch(sampler, domains, config, ("train", index), config.batch_size,
                                           config.patch_size)  # fmt: skip
            yield {"rainy": rainy, "clean": clean}

    plan = Plan(
        total=config.max_iterations,
        schedule=warmup_constant(config.warmup_iterations),
        data=data,
        desc="shipped",
        log_every=config.val_every,
        checkpoint_every=config.val_every,
        validate=lambda network: validate(network, val, session.device),
        validate_every=config.val_every,
        plateau=Plateau(config.plateau_gain, config.plateau_window, config.lr_drops),
        max_seconds=config.max_minutes * 60,
        config=config_to_dict(config),
    )
    step.wrap()
    outcome = fit(step, plan, out, session, resume=path)
    stopped = {"plateau": "plateau", "time": "max_minutes"}.get(outcome.stopped, "max_iterations")
    summary = {"iterations": outcome.step, "stopped": stopped, "seconds": round(outcome.seconds, 1),
               "best_val_psnr": outcome.best["metric"], "lr_drops": outcome.lr_drops, "domains": list(domains),
               "holdout": list(config.holdout), "config": config_to_dict(config),
               "unseen_domains": [d for d in UNSEEN_DOMAINS if d not in domains]}  # fmt: skip
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    log.info("stopped at iteration %d (%s); best validation %.2f dB", outcome.step, stopped, outcome.best["metric"])
    session.close()
    return summary
