"""Supervised de-raining on paired folders: `SupervisedStep` on the one loop (cosine schedule, validation,
checkpoint/resume, AMP, DDP).

This is task 1 of the continual pipeline and the "individual"/"joint" baselines: plain supervised training of
any registered network with MPRNet's loss (Charbonnier + 0.05 edge, summed over stage outputs).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import ConcatDataset

from derain.config import config_to_dict, save_resolved
from derain.data.datasets import PairedDataset
from derain.models import build_model, save_checkpoint, stage_outputs
from derain.models.registry import ModelSpec
from derain.outputs import atomic_write_text
from derain.train.evaluation import evaluate_folder
from derain.train.loop import Plan, Step, cosine, fit, warmup_cosine
from derain.train.losses import restoration_loss
from derain.train.session import Session, batches, seed_everything, unwrap
from derain.train.state import resume_file

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
    max_minutes: float = 0.0  # time budget over resumes (0: none); the run ends resumable
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    log_every: int = 50


def learning_rate(config: SupervisedConfig, step: int) -> float:
    """Linear warm-up, then cosine from `lr` to `min_lr` over the remaining iterations."""
    return warmup_cosine(step, config.iterations, config.warmup_iterations, config.lr, config.min_lr)


class SupervisedStep(Step):
    """Paired (rainy, clean) batch -> restoration loss (summed over stage outputs) -> one Adam step."""

    def __init__(self, network: nn.Module, session: Session, lr: float, edge_weight: float, grad_clip: float = 0.0
                 ) -> None:  # fmt: skip
        self.network, self.session = network, session
        self.edge_weight, self.grad_clip = edge_weight, grad_clip
        self.optimizer = torch.optim.Adam(network.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        self.networks, self.optimizers = {"network": network}, {"network": self.optimizer}
        self.trained = network  # DDP-wrapped by `wrap` once the weights are final (after a resume)

    def wrap(self) -> None:
        self.trained = self.session.wrap(self.network)

    def __call__(self, batch: dict, step: int) -> dict[str, float]:
        rainy, clean = self.session.to(batch["rainy"]), self.session.to(batch["clean"])
        with self.session.autocast():
            loss = restoration_loss(stage_outputs(self.trained(rainy)), clean, self.edge_weight)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.grad_clip)
        self.optimizer.step()
        return {"loss": loss.item()}


def validate(model: torch.nn.Module, folders: tuple[str, ...], device: torch.device) -> dict[str, dict[str, float]]:
    """Every test folder's mean metrics."""
    model.eval()
    return {folder: evaluate_folder(model, folder, device=device, progress=False)["mean"] for folder in folders}


def validation_row(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """One validation as the loop logs it: mean PSNR (RGB) over the folders first (the figure that counts), then
    each folder's metrics."""
    flat = {f"{Path(folder).parent.name}/{key}": value for folder, means in results.items() for key, value in
            means.items()}  # fmt: skip
    return {"psnr_rgb": sum(means["psnr_rgb"] for means in results.values()) / len(results), **flat}


def train_supervised(config: SupervisedConfig, resume: str | None = None) -> Path:
    """Train and return the path of the final checkpoint (`<out>/final.pt`).

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
    network = session.prepare(build_model(config.model.name, **config.model.kwargs))
    step = SupervisedStep(network, session, config.lr, config.edge_weight, config.grad_clip)
    checkpoint = resume_file(out, resume)
    union = ConcatDataset(datasets)
    plan = Plan(
        total=config.iterations,
        schedule=cosine(config.iterations, config.warmup_iterations, config.lr, config.min_lr),
        data=lambda start: batches(union, config.batch_size, config.seed, session, start, config.workers),
        desc="train",
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        validate=(lambda model: validation_row(validate(model, config.test_data, session.device)))
        if config.val_every and config.test_data else None,  # fmt: skip
        validate_every=config.val_every,
        save_best=False,
        max_seconds=config.max_minutes * 60,
        config=config_to_dict(config),
    )
    step.wrap()
    outcome = fit(step, plan, out, session, resume=checkpoint)
    final = out / "final.pt"
    if session.main and outcome.step >= config.iterations:
        final = save_checkpoint(final, unwrap(network), step=outcome.step, config=config_to_dict(config))
        summary = {"iterations": outcome.step, "train_seconds": outcome.seconds, "history": outcome.history}
        if config.test_data:
            summary["test"] = validate(network, config.test_data, session.device)
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    session.barrier()
    session.close()
    return final
