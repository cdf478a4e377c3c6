"""CLGID step 1, "memorize": train one VRGNet per dataset and keep its rain generator in a bank.

Losses (released VRGNet joint training): WGAN-GP critic every step (gradient penalty weight 10); every
`critic_steps` steps the encoder, generator and background net minimise -D(fake) + KL(z) + KL(background),
where the background KL against the clean image with variance 1e-6 is a heavily weighted MSE.

The bank is a folder with one sub-folder per dataset name: `<bank>/<name>/generator.pt` (a registry
checkpoint of `vrgnet_generator`), `last.pt` (the one loop's resume state), `best.pt` (the generator closest to the
dataset's rain, with `similarity_every`), `samples.png`, `summary.json`. Training is `GeneratorStep` on `fit`.
A generator trained once serves every stream that contains its dataset.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from derain.data.datasets import PairedDataset
from derain.data.rain import RainDomain
from derain.models import build_model, load_model, save_checkpoint
from derain.models.vrgnet import VRGNet
from derain.train.loop import BEST, LAST, Plan, Plateau, Step, fit, milestones
from derain.train.rain_memory import (
    ParametricRain,
    fit_parametric_memory,
    similarity_check,
    train_paired_generator,
    write_samples,
)
from derain.train.session import Session, batches, seed_everything
from derain.train.state import load_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GeneratorConfig:
    """VRGNet training; defaults are the released recipe (700 epochs x 3000 iterations, batch 18)."""

    nz: int = 128
    size: int = 64
    batch_size: int = 18
    iterations: int = 2_100_000  # critic steps
    critic_steps: int = 5  # critic steps per generator step
    gp_weight: float = 10.0
    lr_critic: float = 4e-4
    lr_background: float = 2e-4
    lr_generator: float = 1e-4  # encoder + generator
    milestones: tuple[float, ...] = (400 / 700, 600 / 700, 650 / 700, 675 / 700, 690 / 700)  # x0.5, fractions
    background_var: float = 1e-6
    background_stages: int = 6  # PReNet stages of the background net (released: 6)
    background_channels: int = 32  # its width (released: 32); it is ~90% of the cost and is discarded after
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    device: str = "auto"
    cache: bool = False  # keep decoded training pairs in memory (small sets on a GPU)
    # similarity_every > 0: every that many steps, score the generator's samples against the dataset's rain
    # (`quality/rain_similarity.py`, distance in [0, 1]); the bank keeps the closest generator and training stops
    # when the distance has not fallen by `similarity_gain` within `similarity_window` steps (`iterations` is the cap)
    similarity_every: int = 0
    similarity_window: int = 1000
    similarity_gain: float = 0.005
    similarity_samples: int = 256


@dataclass(frozen=True)
class GeneratorRunConfig:
    """`derain-train` trainer `generator`: one bank entry from one paired training folder."""

    train_data: str  # folder with rain/ and norain/
    out: str  # the bank entry folder, e.g. runs/generator_bank/rain100H
    generator: GeneratorConfig = GeneratorConfig()


def kl_latent(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)), mean over batch and latent dimensions."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).mean()


def kl_background(mu: torch.Tensor, logvar: torch.Tensor, clean: torch.Tensor, var: float) -> torch.Tensor:
    """KL(N(mu_b, sigma_b^2) || N(clean, var)), mean over pixels."""
    ratio = logvar.exp() / var
    return 0.5 * ((mu - clean).pow(2) / var + ratio - 1 - torch.log(ratio)).mean()


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def vrgnet_optimizers(net: VRGNet, config: GeneratorConfig) -> dict[str, torch.optim.Optimizer]:
    """The released recipe's three Adams: critic, background net, encoder + generator."""
    return {
        "critic": torch.optim.Adam(net.critic.parameters(), lr=config.lr_critic),
        "background": torch.optim.Adam(net.background.parameters(), lr=config.lr_background),
        "generator": torch.optim.Adam([*net.encoder.parameters(), *net.generator.parameters()], lr=config.lr_generator),
    }


def vrgnet_step(
    net: VRGNet,
    optimizers: dict[str, torch.optim.Optimizer],
    rainy: torch.Tensor,
    clean: torch.Tensor,
    generator_step: bool,
    config: GeneratorConfig,
) -> dict[str, float]:
    """One critic step (WGAN-GP), plus the encoder/generator/background step when `generator_step`; the losses."""
    with torch.set_grad_enabled(generator_step):  # critic-only steps need no graph through the VRGNet
        parts = net.synthesize(rainy)
    fake = parts["fake"]
    critic_loss = (
        -net.critic(rainy).mean()
        + net.critic(fake.detach()).mean()
        + config.gp_weight * gradient_penalty(net.critic, rainy, fake.detach())
    )
    optimizers["critic"].zero_grad(set_to_none=True)
    critic_loss.backward()
    optimizers["critic"].step()
    row = {"critic": critic_loss.item()}
    if generator_step:
        adversarial = -net.critic(fake).mean()
        kl_z = kl_latent(parts["mu_z"], parts["logvar_z"])
        kl_b = kl_background(parts["mu_b"], parts["logvar_b"], clean, config.background_var)
        loss = adversarial + kl_z + kl_b
        for name in ("background", "generator"):
            optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["background"].step()
        optimizers["generator"].step()
        row.update(adversarial=adversarial.item(), kl_z=kl_z.item(), kl_b=kl_b.item())
    return row


MEMORIES = ("vrgnet", "paired_gan", "parametric")  # what a bank entry holds (train/rain_memory.py for the two new)


class GeneratorBank:
    """Frozen rain memories by dataset name, trained on demand: VRGNet generators (`memory="vrgnet"`, the paper's,
    at `<root>/<name>`), paired rain GANs (`"paired_gan"`, at `<root>/paired_gan/<name>`) or fitted renderer
    parameters (`"parametric"`, `<root>/parametric/<name>/rain.json`)."""

    def __init__(self, root: str | Path, memory: str = "vrgnet") -> None:
        if memory not in MEMORIES:
            raise ValueError(f"memory must be one of {MEMORIES}, got {memory!r}")
        self.root, self.memory = Path(root), memory

    def folder(self, name: str) -> Path:
        return self.root / name if self.memory == "vrgnet" else self.root / self.memory / name

    def path(self, name: str) -> Path:
        return self.folder(name) / ("rain.json" if self.memory == "parametric" else "generator.pt")

    def has(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str, device: torch.device | str = "cpu") -> nn.Module | RainDomain:
        """A generator (frozen, on `device`), or the fitted rain domain of a parametric memory."""
        if self.memory == "parametric":
            return ParametricRain.load(self.path(name)).domain(f"memory:{name}")
        generator = load_model(self.path(name), expect="vrgnet_generator").to(device).eval()
        for parameter in generator.parameters():
            parameter.requires_grad_(False)
        return generator

    def ensure(self, name: str, train_dir: str | Path, config: Any, session: Session | None = None) -> Path:
        """The memory of `name`, learning it from `train_dir` first if the bank lacks it (resumable). `config`: a
        `GeneratorConfig` (vrgnet), a `PairedGANConfig` (paired_gan) or a `ParametricConfig` (parametric)."""
        missing = not self.has(name)
        if session is not None:
            missing = session.broadcast_flag(missing)  # rank 0 decides, so every rank takes the same branch
        if missing and self.memory == "vrgnet":  # every rank: rank 0 trains, the others wait inside
            train_rain_generator(train_dir, self.folder(name), config, session)
        elif missing:
            if session is None or session.main:
                with self._lock(name):  # another process learning the same memory: wait for it, then use it
                    if not self.has(name):
                        if self.memory == "paired_gan":
                            train_paired_generator(train_dir, self.folder(name), config)
                        else:
                            fit_parametric_memory(train_dir, self.folder(name), config.size, config.evaluations,
                                                  config.seed, config.count, config.search)  # fmt: skip
            if session is not None:
                session.barrier()
        return self.path(name)

    @contextlib.contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        """An exclusive lock on learning `name` (`<folder>.lock`, released when the process ends however it ends),
        so that processes sharing a bank learn each memory once."""
        import fcntl

        folder = self.folder(name)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with open(folder.parent / f"{folder.name}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class GeneratorStep(Step):
    """One WGAN-GP critic step, plus the encoder / generator / background step every `critic_steps` (`vrgnet_step`);
    its result is the rain generator, as a registry network (what the bank stores)."""

    def __init__(self, net: VRGNet, config: GeneratorConfig, device: torch.device) -> None:
        self.net, self.config, self.device = net, config, device
        self.networks, self.optimizers = {"vrgnet": net}, vrgnet_optimizers(net, config)

    def __call__(self, batch: dict, step: int) -> dict[str, float]:
        rainy, clean = batch["rainy"].to(self.device), batch["clean"].to(self.device)
        return vrgnet_step(self.net, self.optimizers, rainy, clean, step % self.config.critic_steps == 0, self.config)

    def result(self) -> nn.Module:
        generator = build_model("vrgnet_generator", nz=self.config.nz, size=self.config.size)
        generator.load_state_dict(self.net.generator.state_dict())
        return generator


def train_rain_generator(
    train_dir: str | Path, out: str | Path, config: GeneratorConfig, session: Session | None = None
) -> Path:
    """Train a VRGNet on the pairs of `train_dir`; resumes from `<out>/last.pt`; returns `<out>/generator.pt`.

    Runs on one process (rank 0 under DDP; other ranks wait): a bank entry is small and trained once."""
    session = session or Session.start(config.device, amp=False, channels_last=False)
    out = Path(out)
    if not session.main:
        session.barrier()
        return out / "generator.pt"
    single = Session(session.device)
    seed_everything(config.seed)
    dataset = PairedDataset(train_dir, patch_size=config.size, augment=False, seed=config.seed, cache=config.cache)
    net = VRGNet(config.nz, config.size, config.background_stages, config.background_channels).to(session.device)
    step = GeneratorStep(net, config, session.device)
    watching = config.similarity_every > 0
    plan = Plan(
        total=config.iterations,
        schedule=milestones([int(f * config.iterations) for f in config.milestones]),
        data=lambda start: batches(dataset, config.batch_size, config.seed, single, start_step=start),
        desc=f"memorize {out.name}",
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        validate=similarity_check(train_dir, config) if watching else None,
        validate_every=config.similarity_every,
        plateau=Plateau(config.similarity_gain, config.similarity_window, drops_allowed=0) if watching else None,
        config={"generator": config.__dict__, "train_dir": str(train_dir)},
    )
    outcome = fit(step, plan, out, single, resume=out / LAST)
    generator = step.result()
    if watching and (out / BEST).is_file():  # the bank keeps the generator closest to the dataset's rain
        generator.load_state_dict(load_state(out / BEST)["weights"])
    path = save_checkpoint(out / "generator.pt", generator, dataset=str(train_dir), steps=outcome.step)
    write_samples(generator, out / "samples.png")
    summary = {"train_dir": str(train_dir), "critic_steps": outcome.step, "seconds_this_run": outcome.seconds_this_run,
               "seconds": outcome.seconds}  # fmt: skip
    if outcome.history:
        summary.update(similarity=outcome.history, best_similarity_step=outcome.best["step"],
                       best_distance=-outcome.best["metric"], stopped=outcome.stopped)  # fmt: skip
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    session.barrier()
    return path
