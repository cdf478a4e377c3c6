"""The one training loop: every recipe is a config, a `Step` and a `Plan`, and `fit` runs it.

A `Step` is a method's iteration (supervised, CLGID replay, an RGSUD stage, a rain generator...): it owns its
networks and optimizers and turns one batch into updates and logged numbers. `fit` owns everything around it, the
same way for every recipe:

- the learning-rate schedule (`Plan.schedule`: a factor of each optimizer's base rate, times the plateau's scale),
- progress bar and CSV logs (`log.csv`, `validation.csv`),
- validation every `validate_every` steps, the best checkpoint (`best.pt`) and the plateau rule (`Plateau`: halve
  the rate, then stop),
- the resume state (`last.pt`: networks, optimizers, step, RNGs, the loop's own state and the step's), written
  atomically every `checkpoint_every` steps and when the run ends, read back by `resume`,
- the time budget (`max_seconds`): the run ends with its state saved, `--resume auto` goes on.
AMP and DDP come from the `Session` (`derain.train.session`): the step runs its forward pass in `autocast` and its
networks are DDP-wrapped by the recipe; only rank 0 writes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from derain.cli import progress
from derain.models import save_checkpoint
from derain.train.session import CsvLog, Session, unwrap
from derain.train.state import load_state, rng_state, save_state, set_rng_state

log = logging.getLogger(__name__)

LAST, BEST = "last.pt", "best.pt"
Schedule = Callable[[int], float]  # step -> factor of every optimizer's base learning rate


# ----------------------------------------------------------------------------------------------- schedules


def warmup_cosine(step: int, total: int, warmup: int, lr: float, min_lr: float) -> float:
    """Linear warm-up over `warmup` steps, then cosine from `lr` to `min_lr` at `total`."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress_ = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress_))


def cosine(total: int, warmup: int, lr: float, min_lr: float) -> Schedule:
    """Warm-up, then cosine from `lr` to `min_lr` (as a factor of `lr`)."""
    return lambda step: warmup_cosine(step, total, warmup, lr, min_lr) / lr


def warmup_constant(warmup: int) -> Schedule:
    """Linear warm-up over `warmup` steps, then the base rate (a plateau's halvings come on top)."""
    return lambda step: min(1.0, (step + 1) / max(1, warmup))


def milestones(steps: list[int] | tuple[int, ...]) -> Schedule:
    """Halved at each milestone step."""
    return lambda step: 0.5 ** sum(step >= milestone for milestone in steps)


@dataclass
class Plateau:
    """Train to a plateau: a validation score that has not risen by `gain` within `window` steps halves the
    learning rate (the first `drops_allowed` times, restarting the window), then stops."""

    gain: float
    window: int
    drops_allowed: int
    best: float = float("-inf")
    best_step: int = 0
    drops: int = 0

    def update(self, step: int, value: float) -> str:
        """'improved', 'wait', 'drop' (halve the learning rate) or 'stop'."""
        if value > self.best + self.gain:
            self.best, self.best_step = value, step
            return "improved"
        if step - self.best_step < self.window:
            return "wait"
        if self.drops < self.drops_allowed:
            self.drops += 1
            self.best_step = step
            self.best = max(self.best, value)
            return "drop"
        return "stop"


# ----------------------------------------------------------------------------------------------- steps


class Step:
    """One iteration of a training method, with explicit inputs (a batch) and outputs (numbers to log).

    Subclasses fill `networks` (every module whose weights the resume state keeps) and `optimizers` (whose base
    learning rates the schedule scales), and implement `__call__`. `result()` is the network validation scores and
    `best.pt` keeps; `state()` / `load_state()` carry what else a resume needs (a replay RNG, a reward pool);
    `after(step)` runs periodic method work (reward sweeps). `load_state` gets the step the state was saved at
    under "step".
    """

    networks: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]

    def __call__(self, batch: Any, step: int) -> dict[str, float]:
        raise NotImplementedError

    def result(self) -> nn.Module:
        return unwrap(next(iter(self.networks.values())))

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        pass

    def after(self, step: int) -> None:
        pass

    def base_rates(self) -> dict[str, float]:
        """Each optimizer's learning rate as built (what the schedule scales)."""
        if not hasattr(self, "_base_rates"):
            self._base_rates = {name: opt.param_groups[0]["lr"] for name, opt in self.optimizers.items()}
        return self._base_rates

    def set_rate(self, factor: float) -> None:
        for name, optimizer in self.optimizers.items():
            for group in optimizer.param_groups:
                group["lr"] = self.base_rates()[name] * factor


# ----------------------------------------------------------------------------------------------- the loop


@dataclass
class Plan:
    """How long and how a step trains, and what is measured along the way.

    Attributes:
        total: the step count that ends the run (the cap, when a plateau may stop it earlier).
        schedule: factor of the base learning rates per step.
        data: batches from a start step (resumes continue the same batch stream mid-epoch).
        validate: scores the step's `result()`: {"metric": value, ...}, the first key is the one that counts.
        validate_every / validate_from: validations at steps s > validate_from with (s - validate_from) % every == 0,
            and at `total`.
        plateau: the rule on the validation metric (None: no early stop, no halving).
        earliest_stop: a plateau "stop" before this step waits instead.
        best_gain: how much better a validation must be to replace `best.pt`.
        save_best: whether `best.pt` is written (the recipe's result when it trains to a plateau).
        max_seconds: time budget of the whole run, summed over resumes (0: none).
        prefix: before the names of the files the loop writes (RGSUD's stages share a folder: `stage2_best.pt`).
        start_best: the validation `best.pt` must beat (a stage that validated its starting network).
    """

    total: int
    schedule: Schedule
    data: Callable[[int], Iterator[Any]]
    desc: str = "train"
    log_every: int = 50
    checkpoint_every: int = 0
    validate: Callable[[nn.Module], dict[str, float]] | None = None
    validate_every: int = 0
    validate_from: int = 0
    plateau: Plateau | None = None
    earliest_stop: int = 0
    best_gain: float = 0.0
    save_best: bool = True
    max_seconds: float = 0.0
    prefix: str = ""
    start_best: float = float("-inf")
    config: dict = field(default_factory=dict)  # written into every state (what the run was)


@dataclass
class Outcome:
    """How a run ended: the step, why ('budget', 'cap', 'plateau', 'time'), the best validation and the history."""

    step: int
    stopped: str
    best: dict
    seconds: float
    seconds_this_run: float
    lr_drops: int
    history: list[dict]


def fit(step: Step, plan: Plan, folder: Path, session: Session, resume: Path | None = None) -> Outcome:
    """Train `step` by `plan` in `folder`, continuing from the state `resume` (a `last.pt`) when given. Long on
    purpose: the whole loop, read top to bottom in one sitting (torchvision's reference trainer)."""
    position, scale, spent, history = 0, 1.0, 0.0, []
    best = {"metric": plan.start_best, "step": 0}
    stopped: str | None = None
    step.base_rates()  # as built, before a resume loads the optimizers' last rates
    if session.broadcast_flag(resume is not None and Path(resume).is_file()):
        position, scale, spent, best, stopped, history = _restore(step, plan, Path(resume))
    data = plan.data(position)
    logger = CsvLog(folder / f"{plan.prefix}log.csv", enabled=session.main)
    validations = CsvLog(folder / f"{plan.prefix}validation.csv", enabled=session.main and plan.validate is not None)
    bar = progress(total=plan.total, initial=position, desc=plan.desc, enabled=session.main)
    started = time.perf_counter()
    if stopped is None and plan.max_seconds and session.broadcast_flag(spent > plan.max_seconds):
        stopped = "time"  # a resumed run whose budget is spent: not one more step
    while position < plan.total and stopped is None:
        step.set_rate(plan.schedule(position) * scale)
        row = {"step": position + 1, "lr": next(iter(step.optimizers.values())).param_groups[0]["lr"]}
        row.update(step(next(data), position))
        position += 1
        bar.update(1)
        step.after(position)
        if position % plan.log_every == 0 or position == plan.total:
            logger.write(row)
            bar.set_postfix(**{key: f"{value:.4f}" for key, value in row.items() if key == "loss"})
        if _due(position, plan):
            modes = {name: network.training for name, network in step.networks.items()}
            scores = plan.validate(step.result())
            metric = next(iter(scores.values()))
            decision = plan.plateau.update(position, metric) if plan.plateau is not None else "-"
            if decision == "stop" and position < plan.earliest_stop:
                decision = "wait"  # not yet: a fresh network may still be leaving the identity
            history.append({"step": position, **scores, "lr": row["lr"], "decision": decision})
            validations.write(history[-1])
            if metric > best["metric"] + plan.best_gain:
                best = {"metric": metric, "step": position, **scores}
                if plan.save_best and session.main:
                    save_checkpoint(folder / f"{plan.prefix}{BEST}", step.result(), step=position, validation=scores)
            scale *= 0.5 if decision == "drop" else 1.0
            stopped = "plateau" if decision == "stop" else None
            for name, network in step.networks.items():  # validation leaves networks in eval mode: as they were
                network.train(modes[name])
        seconds = spent + time.perf_counter() - started
        over = bool(plan.max_seconds) and position < plan.total and seconds > plan.max_seconds
        if stopped is None and plan.max_seconds and session.broadcast_flag(over):  # rank 0's clock decides for all
            stopped = "time"
        if session.main and plan.checkpoint_every and position % plan.checkpoint_every == 0 and stopped is None \
                and position < plan.total:  # fmt: skip
            _save(step, plan, folder, position, scale, seconds, best, None, history)
    bar.close()
    seconds = spent + time.perf_counter() - started
    stopped = stopped or ("cap" if plan.plateau is not None else "budget")
    if session.main:
        _save(step, plan, folder, position, scale, seconds, best, stopped, history)
    session.barrier()
    drops = plan.plateau.drops if plan.plateau is not None else 0
    return Outcome(position, stopped, best, seconds, time.perf_counter() - started, drops, history)


def _due(position: int, plan: Plan) -> bool:
    """Whether a validation falls on this step."""
    if plan.validate is None or position <= plan.validate_from:
        return False
    return position == plan.total or (plan.validate_every > 0 and (position - plan.validate_from)
                                       % plan.validate_every == 0)  # fmt: skip


def _save(step: Step, plan: Plan, folder: Path, position: int, scale: float, seconds: float, best: dict,
          stopped: str | None, history: list[dict]) -> None:  # fmt: skip
    """The one resume state: networks, optimizers, step, RNGs, the loop's state and the method's."""
    save_state(
        {
            "step": position,
            "networks": {name: unwrap(network).state_dict() for name, network in step.networks.items()},
            "optimizers": {name: optimizer.state_dict() for name, optimizer in step.optimizers.items()},
            "rng": rng_state(),
            "loop": {"scale": scale, "seconds": seconds, "best": best, "stopped": stopped, "history": history,
                     "plateau": vars(plan.plateau) if plan.plateau is not None else None},  # fmt: skip
            "method": step.state(),
            "config": plan.config,
        },
        folder / f"{plan.prefix}{LAST}",
    )


def _restore(step: Step, plan: Plan, path: Path) -> tuple[int, float, float, dict, str | None, list[dict]]:
    """Load `last.pt` into the step and the plan's plateau; (step, lr scale, seconds, best, stopped, history)."""
    from derain.models.registry import CheckpointError

    state = load_state(path)
    missing = [key for key in ("networks", "optimizers", "loop", "method") if key not in state]
    if missing:
        raise CheckpointError(f"{path}: not a training state of this version (no {', '.join(missing)}); resume from "
                              "a run folder's last.pt written by the same recipe")  # fmt: skip
    unknown = sorted(set(step.networks) ^ set(state["networks"]))
    if unknown:
        raise CheckpointError(f"{path}: holds networks {sorted(state['networks'])}, this recipe trains "
                              f"{sorted(step.networks)}")  # fmt: skip
    for name, network in step.networks.items():
        unwrap(network).load_state_dict(state["networks"][name])
    for name, optimizer in step.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    step.load_state({**state["method"], "step": state["step"]})
    set_rng_state(state["rng"])
    loop = state["loop"]
    if plan.plateau is not None and loop["plateau"]:  # progress from the state, the rule from the config
        for key in ("best", "best_step", "drops"):
            setattr(plan.plateau, key, loop["plateau"][key])
    log.info("%s: resumed from %s at step %d", plan.desc, path, state["step"])
    stopped = loop["stopped"] if loop["stopped"] == "plateau" else None  # a cap, budget or time limit: go on
    return state["step"], loop["scale"], loop["seconds"], loop["best"], stopped, loop["history"]
