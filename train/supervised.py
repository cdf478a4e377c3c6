"""Supervised de-raining on paired folders: one loop with cosine schedule, validation, checkpoint/resume.

This is task 1 of the continual pipeline and the "individual"/"joint" baselines: plain supervised training of
any registered network with MPRNet's loss (Charbonnier + 0.05 edge, summed over stage outputs).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset, DataLoader

from derain.cli import progress
from derain.config import ConfigError, save_resolved
from derain.data.datasets import PairedDataset
from derain.models import build_model, load_weights, save_checkpoint, stage_outputs
from derain.models.registry import network_problems, read_training_state
from derain.train.evaluate import evaluate_folder, resolve_device
from derain.train.loop import seed_everything, warmup_cosine
from derain.train.losses import restoration_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "realtime"
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:  # a wrong network or argument fails when the YAML is read, not at build time
        problems = network_problems(self.name, self.kwargs)
        if problems:
            raise ConfigError("model: " + "; ".join(problems))


@dataclass(frozen=True)
class SupervisedConfig:
    train_data: tuple[str, ...]  # folders with rain/ and norain/
    test_data: tuple[str, ...] = ()
    model: ModelConfig = ModelConfig()
    out: str = "runs/supervised"
    patch_size: int = 64
    batch_size: int = 16
    iterations: int = 1000
    lr: float = 2e-4
    min_lr: float = 1e-6
    warmup_iterations: int = 0
    edge_weight: float = 0.05
    grad_clip: float = 0.0
    val_every: int = 0  # 0: only at the end
    checkpoint_every: int = 200
    seed: int = 0
    device: str = "auto"
    workers: int = 0


def learning_rate(config: SupervisedConfig, step: int) -> float:
    """Linear warm-up, then cosine from `lr` to `min_lr` over the remaining iterations."""
    return warmup_cosine(step, config.iterations, config.warmup_iterations, config.lr, config.min_lr)


def validate(model: torch.nn.Module, folders: tuple[str, ...], device: torch.device) -> dict[str, dict[str, float]]:
    model.eval()
    results = {folder: evaluate_folder(model, folder, device=device, progress=False)["mean"] for folder in folders}
    model.train()
    return results


def train_supervised(config: SupervisedConfig, resume: str | None = None) -> Path:
    """Train and return the path of the final checkpoint (`<out>/final.pt`).

    Args:
        resume: None, "auto" (the newest checkpoint in `out`, if any) or a checkpoint path.
    """
    out = Path(config.out)
    device = resolve_device(config.device)
    seed_everything(config.seed)
    datasets = [PairedDataset(folder, patch_size=config.patch_size, seed=config.seed) for folder in config.train_data]
    for folder in config.test_data:  # fail on a broken test folder before training starts
        PairedDataset(folder, patch_size=None)
    save_resolved(config, out)

    model = build_model(config.model.name, **config.model.kwargs).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    step = 0
    checkpoint = _find_resume(out, resume)
    if checkpoint is not None:
        state = read_training_state(checkpoint)
        load_weights(model, state["weights"], source=str(checkpoint))
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        torch.set_rng_state(state["rng"]["torch"])
        log.info("resumed from %s at iteration %d", checkpoint, step)

    data = ConcatDataset(datasets)
    history = []
    bar = progress(total=config.iterations, initial=step, desc="train")
    model.train()
    start = time.perf_counter()
    while step < config.iterations:
        epoch = step * config.batch_size // max(1, len(data))
        for dataset in datasets:
            dataset.set_epoch(epoch)
        generator = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        loader = DataLoader(
            data,
            batch_size=config.batch_size,
            shuffle=True,
            drop_last=len(data) >= config.batch_size,
            num_workers=config.workers,
            generator=generator,
        )
        for batch in loader:
            if step >= config.iterations:
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step)
            rainy, clean = batch["rainy"].to(device), batch["clean"].to(device)
            loss = restoration_loss(stage_outputs(model(rainy)), clean, config.edge_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                _save(out / "last.pt", model, optimizer, step, config)
            if config.val_every and step % config.val_every == 0 and config.test_data:
                history.append({"step": step, "val": validate(model, config.test_data, device)})
    bar.close()
    elapsed = time.perf_counter() - start
    final = _save(out / "final.pt", model, optimizer, step, config)
    _save(out / "last.pt", model, optimizer, step, config)
    summary = {"iterations": step, "train_seconds": elapsed, "history": history}
    if config.test_data:
        summary["test"] = validate(model, config.test_data, device)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return final


def _save(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, config: SupervisedConfig
) -> Path:
    from derain.config import config_to_dict

    return save_checkpoint(
        path,
        model,
        optimizer=optimizer.state_dict(),
        step=step,
        config=config_to_dict(config),
        rng={"torch": torch.get_rng_state()},
    )


def _find_resume(out: Path, resume: str | None) -> Path | None:
    if resume is None:
        return None
    if resume == "auto":
        last = out / "last.pt"
        return last if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume checkpoint not found: {path}")
    return path
