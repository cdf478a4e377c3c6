"""Continual de-raining over a stream of paired datasets: CLGID (GAN replay + distillation) and its baselines.

For task n of the stream (0-based t):
- t = 0: plain supervised training (Charbonnier + 0.05 edge, summed over stage outputs).
- t >= 1, method `clgid`: the student starts from the previous task's network; a frozen copy is the teacher.
  Every sample of a batch gets one replayed twin: a generator of an earlier dataset, chosen uniformly per
  sample, draws rain from the prior, made grey (channel max) and added to the *current* clean image. Loss =
  0.5 L(student(rainy), clean) + 0.5 L(student(replayed), clean) + kd_weight * sum_s L1(student_s(replayed),
  teacher_s(replayed)) (the two 0.5 are `current_weight` and `replay_weight`). `kd_mode: released_code` adds
  the KD term without gradient, as the released code does.
- t >= 1, method `sequential`: plain fine-tuning on the new dataset (the lower bound).
- method `joint`: one task on the union of all datasets of the stream (the upper bound), with the iterations
  of the whole stream.
- method `individual`: every dataset trained alone from a fresh network (the paper's per-dataset reference);
  its summary scores each dataset with its own network, and the unseen sets with the mean over the networks.
- `replay_source: renderer` (diagnostic, built-in domains only): instead of a GAN's samples, replay draws the
  earlier domain's rain from the built-in renderer (rendered at `render_size`, cropped to the patch) over the
  current clean image, i.e. what a perfect rain generator would give. It separates "replay + distillation
  works" from "the generators learned the rain".
Every task restarts Adam and the warm-up + cosine schedule. After every task the network is scored on the test
split of every dataset of the stream (seen or not) and on the unseen sets: the accuracy matrix.

Outputs under `out`: `task<k>_<name>/{last,final}.pt`, `log.csv`, `matrix.{csv,json}`, `matrix.png`,
`summary.json`, `config.yaml`. `resume="auto"` continues the unfinished task from its last checkpoint
(weights, optimizer, step, RNG) and never repeats a finished task or a trained generator.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from derain.cli import progress
from derain.config import config_to_dict, save_resolved
from derain.data.datasets import PairedDataset
from derain.data.pairing import DatasetError, paired_folder
from derain.data.rain import AIRLIGHT, RAIN_DOMAINS, get_domain, render_rain_layer
from derain.models import build_model, load_weights, save_checkpoint, stage_outputs
from derain.models.registry import ModelSpec
from derain.models.vrgnet import grey_rain
from derain.quality.evaluate import evaluate_folder
from derain.train.generator_bank import GeneratorBank, GeneratorConfig
from derain.train.loop import (
    CsvLog,
    Plateau,
    Session,
    batches,
    seed_everything,
    set_lr,
    steps_per_epoch,
    unwrap,
    warmup_cosine,
)
from derain.train.losses import restoration_loss
from derain.train.reports import load_matrix, summarize, write_matrix
from derain.train.state import load_state, rng_state, save_state, set_rng_state

log = logging.getLogger(__name__)

METHODS = ("clgid", "sequential", "joint", "individual")
KD_MODES = ("paper", "released_code")
REPLAY_SOURCES = ("gan", "renderer")


@dataclass(frozen=True)
class ContinualConfig:
    """A stream experiment. Defaults are the paper's (MPRNet, 250 epochs per task, batch 16, 64x64 patches)."""

    data_root: str  # holds <name>/train and <name>/test for every name of the stream
    stream: tuple[str, ...]  # dataset names in training order
    unseen: tuple[str, ...] = ()  # paired test folders never trained on (relative to data_root or absolute)
    method: str = "clgid"
    model: ModelSpec = ModelSpec("mprnet")
    init: str = ""  # a checkpoint of `model` that task 1 (and every `individual` task) starts from, not a fresh net
    out: str = "runs/continual"
    bank: str = "runs/generator_bank"
    generator: GeneratorConfig = GeneratorConfig()
    epochs: int = 250  # per task
    iterations: int = 0  # per task (joint: per dataset of the union); > 0 overrides epochs
    warmup_epochs: float = 3.0
    batch_size: int = 16
    patch_size: int = 64
    lr: float = 2e-4
    min_lr: float = 1e-6
    edge_weight: float = 0.05
    kd_weight: float = 1.0
    kd_mode: str = "paper"
    current_weight: float = 0.5  # CLGID's loss: current_weight x L(current) + replay_weight x L(replayed) + KD
    replay_weight: float = 0.5
    replay_source: str = "gan"  # "renderer": oracle replay from the built-in renderer (diagnostic)
    render_size: int = 256  # image size the renderer draws at before the patch crop (the built-in sets' size)
    # plateau_window > 0: every task trains to a plateau of its validation PSNR (`<name>/val`, training scenes),
    # the rule of the shipped de-rainer (`Plateau`): warm-up, then a constant rate halved at each of the first
    # `lr_drops` plateaus; the next one ends the task, whose result is its best validation; `iterations` (or
    # `epochs`) is then the cap per task
    plateau_window: int = 0
    plateau_gain: float = 0.05
    lr_drops: int = 1
    # a task that starts from a fresh network trains at least this many iterations before the rule may stop it: from
    # scratch, light rain keeps a network at the identity for a while (its validation flat), which is no plateau.
    # Window and minimum are per dataset: joint training (one task over the union) scales both by the datasets
    plateau_min_fresh: int = 0
    validate_every: int = 100
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 1234
    device: str = "auto"
    amp: bool = True
    channels_last: bool = True
    workers: int = 0
    cache: bool = False  # keep decoded training pairs in memory (small sets on a GPU)
    metrics: tuple[str, ...] = field(default=("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y"))


def _folder(config: ContinualConfig, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(config.data_root) / path


def check_config(config: ContinualConfig) -> None:
    """Fail before any training on a bad method, an empty stream, or a missing / malformed dataset folder."""
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {config.method!r}")
    if config.kd_mode not in KD_MODES:
        raise ValueError(f"kd_mode must be one of {KD_MODES}, got {config.kd_mode!r}")
    if config.replay_source not in REPLAY_SOURCES:
        raise ValueError(f"replay_source must be one of {REPLAY_SOURCES}, got {config.replay_source!r}")
    if not config.stream:
        raise ValueError("stream is empty: list the dataset names in training order")
    if config.init and not Path(config.init).is_file():
        raise DatasetError(f"init checkpoint not found: {config.init}")
    if config.replay_source == "renderer":
        unknown = [n for n in config.stream if n not in RAIN_DOMAINS]
        if unknown:
            raise ValueError(f"replay_source 'renderer' needs built-in rain domains; not built in: {unknown}")
    if len(set(config.stream)) != len(config.stream):
        raise ValueError(f"stream names must be distinct, got {list(config.stream)}")
    if config.method == "clgid" and config.patch_size != config.generator.size:
        log.warning("patch %d != generator size %d: replayed rain is resized", config.patch_size, config.generator.size)
    problems = []
    splits = ("train", "test", "val") if config.plateau_window > 0 else ("train", "test")
    for name in config.stream:
        for split in splits:
            try:
                paired_folder(_folder(config, name) / split, check=True)
            except DatasetError as error:
                problems.append(f"{name}/{split}: {error}")
    for name in config.unseen:
        try:
            paired_folder(_folder(config, name), check=True)
        except DatasetError as error:
            problems.append(f"unseen {name}: {error}")
    if problems:
        raise DatasetError("dataset check failed before training:\n  " + "\n  ".join(problems))


def task_names(config: ContinualConfig) -> list[str]:
    return ["joint"] if config.method == "joint" else list(config.stream)


def task_dir(config: ContinualConfig, index: int) -> Path:
    return Path(config.out) / f"task{index + 1}_{task_names(config)[index]}"


class RenderedRain:
    """Oracle replay source: the built-in renderer's rain of `domain`, drawn at `size` and cropped to the patch."""

    def __init__(self, domain: str, size: int) -> None:
        self.domain = get_domain(domain)
        self.size = size

    def __call__(self, clean: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        batch, _, height, width = clean.shape
        full = max(self.size, height, width)
        rain, haze, splashes = render_rain_layer(batch, full, full, self.domain, rng, torch.device("cpu"))
        top = int(torch.randint(full - height + 1, (1,), generator=rng))
        left = int(torch.randint(full - width + 1, (1,), generator=rng))
        window = (slice(None), slice(None), slice(top, top + height), slice(left, left + width))
        rain, haze, splashes = (t[window].to(clean.device, clean.dtype) for t in (rain, haze, splashes))
        low, high = AIRLIGHT
        light = (low + (high - low) * torch.rand(batch, 1, 1, 1, generator=rng)).to(clean.device, clean.dtype)
        return (clean * (1 - haze) + light * haze + rain + splashes).clamp(0, 1)


@torch.no_grad()
def replay(clean: torch.Tensor, generators: list[nn.Module | RenderedRain], rng: torch.Generator) -> torch.Tensor:
    """One replayed rainy twin per clean image: rain of a uniformly chosen earlier generator, grey, added
    (a `RenderedRain` source gives the whole rendered image instead)."""
    choice = torch.randint(len(generators), (clean.shape[0],), generator=rng)
    rain = torch.zeros_like(clean)
    rendered = []
    for index, generator in enumerate(generators):
        picked = (choice == index).nonzero().flatten()
        if picked.numel() == 0:
            continue
        if isinstance(generator, RenderedRain):
            on_device = picked.to(clean.device)
            rendered.append((on_device, generator(clean[on_device], rng)))
            continue
        z = torch.randn(picked.numel(), generator.nz, generator=rng).to(clean.device)
        layer = grey_rain(generator(z).float())
        if layer.shape[-2:] != clean.shape[-2:]:
            layer = F.interpolate(layer, size=clean.shape[-2:], mode="bilinear", align_corners=False)
        rain[picked.to(clean.device)] = layer.to(rain.dtype)
    replayed = (clean + rain).clamp(0, 1)
    for picked, images in rendered:
        replayed[picked] = images
    return replayed


def distillation(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    """L1 between student and teacher over every stage output."""
    return sum(F.l1_loss(s, t) for s, t in zip(student, teacher, strict=True))


def replay_loss(
    model: nn.Module,
    teacher: nn.Module,
    generators: list[nn.Module | RenderedRain],
    rainy: torch.Tensor,
    clean: torch.Tensor,
    rng: torch.Generator,
    config: ContinualConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """CLGID's loss for task n >= 2: 0.5 real + 0.5 replayed (`current_weight`, `replay_weight`) + kd_weight x
    distillation; and its parts."""
    replayed = replay(clean, generators, rng)
    outputs = stage_outputs(model(torch.cat((rainy, replayed))))
    real = [o[: len(rainy)] for o in outputs]
    fake = [o[len(rainy) :] for o in outputs]
    with torch.no_grad():
        taught = stage_outputs(teacher(replayed))
    loss_real = restoration_loss([o.float() for o in real], clean, config.edge_weight)
    loss_replay = restoration_loss([o.float() for o in fake], clean, config.edge_weight)
    kd = distillation([o.float() for o in fake], [t.float() for t in taught])
    if config.kd_mode == "released_code":
        kd = kd.detach()  # the released code adds KD as a number: logged, no gradient
    loss = config.current_weight * loss_real + config.replay_weight * loss_replay + config.kd_weight * kd
    return loss, {"loss_real": loss_real.item(), "loss_replay": loss_replay.item(), "kd": kd.item()}


def task_loss(
    model: nn.Module,
    teacher: nn.Module | None,
    generators: list[nn.Module | RenderedRain] | None,
    rainy: torch.Tensor,
    clean: torch.Tensor,
    rng: torch.Generator,
    config: ContinualConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch: CLGID's `replay_loss` when there is a teacher (task n >= 2), else the plain
    restoration loss (task 1, sequential, joint, individual); and its logged parts."""
    if teacher is not None:
        return replay_loss(model, teacher, generators, rainy, clean, rng, config)
    outputs = stage_outputs(model(rainy))
    return restoration_loss([o.float() for o in outputs], clean, config.edge_weight), {}


def uses_generators(config: ContinualConfig) -> bool:
    """Whether the stream replays from the GAN bank (CLGID with `replay_source: gan`)."""
    return config.method == "clgid" and config.replay_source == "gan"


def train_stream(config: ContinualConfig, resume: str | None = None) -> dict:
    """Run (or continue) the whole stream; returns the summary dict (also written to `out/summary.json`)."""
    check_config(config)
    session = Session.start(config.device, config.amp, config.channels_last)
    out = Path(config.out)
    if resume not in (None, "auto"):
        raise ValueError("continual runs resume with resume='auto' (each task keeps its own last.pt)")
    if resume is None and session.main and (out / "matrix.json").exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume auto to continue it or choose another out")
    if session.main:
        save_resolved(config, out)
    bank = GeneratorBank(config.bank)
    matrix = load_matrix(out)
    previous: Path | None = None
    try:
        for index, name in enumerate(task_names(config)):
            final = task_dir(config, index) / "final.pt"
            if final.is_file() and name in matrix["rows"]:
                log.info("task %d (%s) already finished: %s", index + 1, name, final)
                previous = final
                continue
            if uses_generators(config) and index > 0:
                for earlier in config.stream[:index]:
                    bank.ensure(earlier, _folder(config, earlier) / "train", config.generator, session)
            start = None if config.method == "individual" else previous
            final = _train_task(config, session, bank, index, start)
            if session.main:
                model = _load_net(config, final, session.device)
                matrix["rows"][name] = _score(config, model, session.device)
                write_matrix(config, matrix, out)
            session.barrier()
            previous = final
    finally:
        session.close()
    summary = summarize(config, matrix)
    if session.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _load_net(config: ContinualConfig, path: Path, device: torch.device) -> nn.Module:
    model = build_model(config.model.name, **config.model.kwargs)
    state = load_state(path)
    load_weights(model, state["weights"], source=str(path))
    return model.to(device)


def _train_task(
    config: ContinualConfig, session: Session, bank: GeneratorBank, index: int, previous: Path | None
) -> Path:
    """Train one task of the stream (resuming mid-task from its `last.pt`); returns its `final.pt`.

    Long on purpose: a training loop read top to bottom in one sitting (torchvision's references); the data,
    the replay sources, the losses and the checkpoint it calls live in their own functions."""
    folder = task_dir(config, index)
    names = list(config.stream) if config.method == "joint" else [config.stream[index]]
    seed_everything(config.seed + index)
    dataset, total, warmup = _task_data(config, session, names, index)
    student = session.prepare(build_model(config.model.name, **config.model.kwargs))
    if previous is not None:
        load_weights(student, load_state(previous)["weights"], str(previous))
    elif config.init:
        load_weights(student, load_state(config.init)["weights"], config.init)
    teacher, generators = _replay_sources(config, session, bank, index, student)
    optimizer = torch.optim.Adam(student.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    step = 0
    replay_state = state = None
    last = folder / "last.pt"
    if session.broadcast_flag(last.is_file()):
        state = load_state(last)
        load_weights(student, state["weights"], str(last))
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        set_rng_state(state["rng"])
        replay_state = state.get("replay_rng")
        log.info("task %d: resumed at iteration %d of %d", index + 1, step, total)
    offset = session.rank + (step if session.world > 1 else 0)  # one rank's RNG state is saved
    replay_rng = torch.Generator().manual_seed(config.seed * 7919 + index * 131 + offset)
    if replay_state is not None and session.world == 1:
        replay_rng.set_state(replay_state)
    model = session.wrap(student)
    model.train()
    logger = CsvLog(folder / "log.csv", enabled=session.main)
    data = batches(dataset, config.batch_size, config.seed + index, session, start_step=step, workers=config.workers)
    bar = progress(
        total=total,
        initial=step,
        desc=f"task {index + 1}/{len(task_names(config))} {names[0]}",
        enabled=session.main,
    )
    fresh = previous is None and not config.init
    plateau, lr_scale, stopped = _plateau_state(config, state, len(names))
    earliest_stop = config.plateau_min_fresh * len(names) if fresh else 0
    best = (state or {}).get("best") or {"val_psnr": float("-inf"), "step": 0}
    val = _validation_set(config, names) if plateau else None
    validations = CsvLog(folder / "validation.csv", enabled=session.main and plateau is not None)
    started = time.perf_counter()
    while step < total and stopped is None:
        if plateau is None:
            set_lr(optimizer, warmup_cosine(step, total, warmup, config.lr, config.min_lr))
        else:
            set_lr(optimizer, config.lr * lr_scale * min(1.0, (step + 1) / max(1, warmup)))
        batch = next(data)
        rainy, clean = session.to(batch["rainy"]), session.to(batch["clean"])
        row = {"step": step + 1, "lr": optimizer.param_groups[0]["lr"]}
        with session.autocast():
            loss, parts = task_loss(model, teacher, generators, rainy, clean, replay_rng, config)
        row.update(parts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        row["loss"] = loss.item()
        bar.update(1)
        if step % config.log_every == 0 or step == total:
            logger.write(row)
            bar.set_postfix(loss=f"{row['loss']:.4f}")
        if plateau is not None and (step % config.validate_every == 0 or step == total):
            score = validate(unwrap(student), val, session.device)
            decision = plateau.update(step, score)
            if (
                decision == "stop" and step < earliest_stop
            ):  # not yet: a fresh network may still be leaving the identity
                decision = "wait"
            validations.write({"step": step, "val_psnr": score, "lr": optimizer.param_groups[0]["lr"],
                               "decision": decision})  # fmt: skip
            if score > best["val_psnr"]:
                best = {"val_psnr": score, "step": step}
                if session.main:
                    save_checkpoint(folder / "best.pt", unwrap(student), task=index, step=step, val_psnr=score)
            lr_scale *= 0.5 if decision == "drop" else 1.0
            stopped = "plateau" if decision == "stop" else None
            model.train()
        if session.main and (step % config.checkpoint_every == 0) and step < total and stopped is None:
            _checkpoint(last, student, optimizer, step, config, replay_rng, (plateau, lr_scale, best))
    bar.close()
    final = folder / "final.pt"
    if session.main:
        stopped = stopped or ("cap" if plateau is not None else "budget")
        _checkpoint(last, student, optimizer, step, config, replay_rng, (plateau, lr_scale, best), stopped)
        result = student
        if plateau is not None and (folder / "best.pt").is_file():  # the task's result is its best validation
            result = build_model(config.model.name, **config.model.kwargs)
            load_weights(result, load_state(folder / "best.pt")["weights"], str(folder / "best.pt"))
        save_checkpoint(final, unwrap(result), config=config_to_dict(config), task=index, step=step)
        record = {"datasets": names, "iterations": step, "cap": total, "stopped": stopped,
                  "seconds_this_run": time.perf_counter() - started}  # fmt: skip
        if plateau is not None:
            record.update(best_val_psnr=best["val_psnr"], best_step=best["step"], lr_drops=plateau.drops)
        (folder / "task.json").write_text(json.dumps(record))
    session.barrier()
    return final


def _task_data(config: ContinualConfig, session: Session, names: list[str], index: int
               ) -> tuple[Dataset, int, int]:  # fmt: skip
    """A task's training set (one dataset, or the union for joint training), its iterations and warm-up steps."""
    parts = [
        PairedDataset(
            _folder(config, n) / "train", patch_size=config.patch_size, seed=config.seed + index, cache=config.cache
        )
        for n in names
    ]
    dataset = parts[0] if len(parts) == 1 else ConcatDataset(parts)
    per_epoch = steps_per_epoch(math.ceil(len(dataset) / session.world), max(1, config.batch_size // session.world))
    # `iterations` is per dataset, so joint training (one task over the union) gets the whole stream's budget,
    # as `epochs` over the union does
    total = config.iterations * len(names) if config.iterations else config.epochs * per_epoch
    warmup = (
        int(round(config.warmup_epochs * per_epoch))
        if not config.iterations
        else int(round(config.warmup_epochs / max(1, config.epochs) * total))
    )
    return dataset, total, warmup


def _replay_sources(config: ContinualConfig, session: Session, bank: GeneratorBank, index: int, student: nn.Module
                    ) -> tuple[nn.Module | None, list | None]:  # fmt: skip
    """CLGID after the first task: a frozen copy of the previous network (the distillation teacher) and the rain
    sources of every earlier dataset (stored generators, or the renderer for oracle replay); else (None, None)."""
    if not (config.method == "clgid" and index > 0):
        return None, None
    teacher = copy.deepcopy(student).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    if config.replay_source == "renderer":
        return teacher, [RenderedRain(n, config.render_size) for n in config.stream[:index]]
    return teacher, [bank.load(n, session.device) for n in config.stream[:index]]


def _checkpoint(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    config: ContinualConfig,
    replay_rng: torch.Generator,
    progress: tuple[Plateau | None, float, dict] = (None, 1.0, {}),
    stopped: str | None = None,
) -> None:
    """`last.pt`: weights, optimizer, step, RNGs and, on a plateau rule, (rule state, lr scale, best validation)."""
    plateau, lr_scale, best = progress
    save_state(
        {
            "plateau": vars(plateau) if plateau is not None else None,
            "lr_scale": lr_scale,
            "best": best,
            "stopped": stopped,
            "replay_rng": replay_rng.get_state(),
            "weights": unwrap(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "rng": rng_state(),
            "config": config_to_dict(config),
        },
        path,
    )


def _plateau_state(config: ContinualConfig, state: dict | None, datasets: int = 1
                   ) -> tuple[Plateau | None, float, str | None]:  # fmt: skip
    """The task's plateau rule (None on a fixed budget; its window scaled by the task's datasets), learning-rate
    scale and stop reason, from its `last.pt` state when resuming."""
    saved = (state or {}).get("plateau")
    plateau = None
    if config.plateau_window > 0:
        plateau = Plateau(config.plateau_gain, config.plateau_window * datasets, config.lr_drops)
        if saved:
            plateau.best, plateau.best_step, plateau.drops = saved["best"], saved["best_step"], saved["drops"]
    return plateau, (state or {}).get("lr_scale", 1.0), (state or {}).get("stopped")


def _validation_set(config: ContinualConfig, names: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every `<name>/val` pair of the task as whole (rainy, clean) images (training scenes, never test ones)."""
    pairs = []
    for name in names:
        dataset = PairedDataset(_folder(config, name) / "val", patch_size=None)
        pairs += [(item["rainy"], item["clean"]) for item in (dataset[i] for i in range(len(dataset)))]
    return pairs


@torch.no_grad()
def validate(model: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Mean PSNR (RGB, dB) of the network's last stage over the validation pairs; leaves the model in eval mode."""
    model.eval()
    scores = []
    for rainy, clean in pairs:
        output = stage_outputs(model(rainy[None].to(device)))[-1].float().clamp(0, 1).cpu()
        mse = (output[0] - clean).pow(2).mean().clamp_min(1e-10)
        scores.append(float(-10 * torch.log10(mse)))
    return sum(scores) / len(scores)


def _score(config: ContinualConfig, model: nn.Module, device: torch.device) -> dict[str, dict[str, float]]:
    """Mean metrics on the test split of every stream dataset and on every unseen set."""
    model.eval()
    scores = {}
    for name in config.stream:
        scores[name] = evaluate_folder(model, _folder(config, name) / "test", device=device, progress=False)["mean"]
    for name in config.unseen:
        scores[f"unseen:{name}"] = evaluate_folder(model, _folder(config, name), device=device, progress=False)["mean"]
    return scores
