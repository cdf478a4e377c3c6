"""Supervised de-raining on paired folders: one loop with cosine schedule, validation, checkpoint/resume.

This is task 1 of the continual pipeline and the "individual"/"joint" baselines: plain supervised training of
any registered network with MPRNet's loss (Charbonnier + 0.05 edge, summed over stage outputs).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import ConcatDataset

from derain.cli import progress
from derain.config import save_resolved
from derain.data.datasets import PairedDataset
from derain.models import build_model, load_weights, save_checkpoint, stage_outputs
from derain.models.registry import ModelSpec
from derain.outputs import atomic_write_text
from derain.quality.evaluate import evaluate_folder
from derain.train.loop import CsvLog, Session, batches, seed_everything, set_lr, warmup_cosine
from derain.train.losses import restoration_loss
from derain.train.state import load_state, resume_file, rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupervisedConfig:
    train_data: tuple[str, ...]  # folders with rain/ and norain/
    test_data: tuple[str, ...] = ()
    model: ModelSpec = ModelSpec()
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
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    log_every: int = 50


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

    Runs on the shared toolkit (`loop.Session`, `loop.batches`, `loop.CsvLog`, `state`): AMP and channels_last on
    CUDA, DDP under torchrun, a CSV log, and a resume that continues mid-epoch with the same batches. Long on
    purpose: a training loop read top to bottom in one sitting (torchvision's references).

    Args:
        resume: None, "auto" (`<out>/last.pt`, if any) or a checkpoint path.
    """
    out = Path(config.out)
    session = Session.start(config.device, amp=config.amp)
    seed_everything(config.seed + session.rank)
    datasets = [PairedDataset(folder, patch_size=config.patch_size, seed=config.seed) for folder in config.train_data]
    for folder in config.test_data:  # fail before training if a test split is broken
        PairedDataset(folder, patch_size=None)
    if session.main:
        save_resolved(config, out)

    model = session.prepare(build_model(config.model.name, **config.model.kwargs))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    step = 0
    checkpoint = resume_file(out, resume)
    if session.broadcast_flag(checkpoint is not None):
        state = load_state(checkpoint)
        load_weights(model, state["weights"], source=str(checkpoint))
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        set_rng_state(state["rng"])
        log.info("resumed from %s at iteration %d", checkpoint, step)

    trained = session.wrap(model)
    trained.train()
    data = batches(ConcatDataset(datasets), config.batch_size, config.seed, session, start_step=step,
                   workers=config.workers)  # fmt: skip
    logger = CsvLog(out / "log.csv", enabled=session.main)
    history = []
    bar = progress(total=config.iterations, initial=step, desc="train", enabled=session.main)
    start = time.perf_counter()
    while step < config.iterations:
        set_lr(optimizer, learning_rate(config, step))
        batch = next(data)
        rainy, clean = session.to(batch["rainy"]), session.to(batch["clean"])
        with session.autocast():
            loss = restoration_loss(stage_outputs(trained(rainy)), clean, config.edge_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        step += 1
        bar.update(1)
        if step % config.log_every == 0 or step == config.iterations:
            logger.write({"step": step, "lr": optimizer.param_groups[0]["lr"], "loss": loss.item()})
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if session.main and config.checkpoint_every and step % config.checkpoint_every == 0:
            _save(out / "last.pt", model, optimizer, step, config)
        if session.main and config.val_every and step % config.val_every == 0 and config.test_data:
            history.append({"step": step, "val": validate(model, config.test_data, session.device)})
    bar.close()
    final = out / "final.pt"
    if session.main:
        elapsed = time.perf_counter() - start
        _save(out / "last.pt", model, optimizer, step, config)
        final = _save(final, model, optimizer, step, config)
        summary = {"iterations": step, "train_seconds": elapsed, "history": history}
        if config.test_data:
            summary["test"] = validate(model, config.test_data, session.device)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    session.barrier()
    session.close()
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
        rng=rng_state(),
    )
