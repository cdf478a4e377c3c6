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
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, Dataset

from derain.config import config_to_dict, save_resolved
from derain.data.datasets import PairedDataset
from derain.data.pairing import DatasetError, paired_folder
from derain.data.rain import AIRLIGHT, RAIN_DOMAINS, RainDomain, get_domain, render_rain_layer
from derain.models import build_model, load_weights, prediction, save_checkpoint, stage_outputs
from derain.models.registry import ModelSpec
from derain.models.vrgnet import grey_rain
from derain.quality.metrics import psnr
from derain.train.evaluation import evaluate_folder
from derain.train.generator_bank import MEMORIES, GeneratorBank, GeneratorConfig
from derain.train.loop import LAST, Plan, Plateau, Step, cosine, fit, warmup_constant
from derain.train.losses import restoration_loss
from derain.train.methods import METHODS, method_of, task_names
from derain.train.rain_memory import CANVAS, PairedGANConfig, ParametricConfig
from derain.train.reports import load_matrix, summarize, write_matrix
from derain.train.session import Session, batches, seed_everything, steps_per_epoch, unwrap
from derain.train.state import load_state

log = logging.getLogger(__name__)

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
    # the rain memory replay draws from (`replay_source: gan`): "vrgnet" (the paper's, `generator`), "paired_gan"
    # (a generator of the dataset's exact rain layers, `paired_gan`) or "parametric" (fitted renderer parameters)
    memory: str = "vrgnet"
    paired_gan: PairedGANConfig = PairedGANConfig()
    parametric: ParametricConfig = ParametricConfig()
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
        raise ValueError(f"method must be one of {tuple(METHODS.names())}, got {config.method!r}")
    if config.kd_mode not in KD_MODES:
        raise ValueError(f"kd_mode must be one of {KD_MODES}, got {config.kd_mode!r}")
    if config.replay_source not in REPLAY_SOURCES:
        raise ValueError(f"replay_source must be one of {REPLAY_SOURCES}, got {config.replay_source!r}")
    if config.memory not in MEMORIES:
        raise ValueError(f"memory must be one of {MEMORIES}, got {config.memory!r}")
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
    if uses_generators(config) and config.memory == "vrgnet" and config.patch_size != config.generator.size:
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


def task_dir(config: ContinualConfig, index: int) -> Path:
    return Path(config.out) / f"task{index + 1}_{task_names(config)[index]}"


class RenderedRain:
    """Replay drawn by the built-in renderer: a domain's rain (oracle replay) or a parametric memory's, drawn at
    `size` and cropped to the patch (at a random place, or at the centre with `center`: how a parametric memory
    was fitted, `derain.train.rain_memory.RainTarget`)."""

    def __init__(self, domain: str | RainDomain, size: int, center: bool = False) -> None:
        self.domain = get_domain(domain)
        self.size, self.center = size, center

    def __call__(self, clean: torch.Tensor, rng: torch.Generator) -> torch.Tensor:
        batch, _, height, width = clean.shape
        full = max(self.size, height, width)
        rain, haze, splashes = render_rain_layer(batch, full, full, self.domain, rng, torch.device("cpu"))
        if self.center:
            top, left = (full - height) // 2, (full - width) // 2
        else:
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


def memory_config(config: ContinualConfig) -> GeneratorConfig | PairedGANConfig | ParametricConfig:
    """The settings of the memory the stream replays from."""
    return {"vrgnet": config.generator, "paired_gan": config.paired_gan, "parametric": config.parametric}[
        config.memory]


def uses_generators(config: ContinualConfig) -> bool:
    """Whether the stream replays from the GAN bank (CLGID with `replay_source: gan`)."""
    return method_of(config).replays and config.replay_source == "gan"


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
    bank = GeneratorBank(config.bank, config.memory)
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
                    bank.ensure(earlier, _folder(config, earlier) / "train", memory_config(config), session)
            start = None if method_of(config).fresh else previous
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


class ReplayStep(Step):
    """One CLGID batch (a teacher and replay sources from task 2 on: `replay_loss`), or the plain restoration loss of
    the baselines and task 1 (`task_loss`); one Adam step. Its state is the replay RNG."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None, generators: list | None, session: Session,
                 config: ContinualConfig, index: int) -> None:  # fmt: skip
        self.student, self.teacher, self.generators = student, teacher, generators
        self.session, self.config, self.index = session, config, index
        self.optimizer = torch.optim.Adam(student.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
        self.networks, self.optimizers = {"student": student}, {"student": self.optimizer}
        self.rng = self._seeded(0)
        self.model = student

    def _seeded(self, step: int) -> torch.Generator:
        offset = self.session.rank + (step if self.session.world > 1 else 0)  # one rank's RNG state is saved
        return torch.Generator().manual_seed(self.config.seed * 7919 + self.index * 131 + offset)

    def wrap(self) -> None:
        self.model = self.session.wrap(self.student)

    def __call__(self, batch: dict, step: int) -> dict[str, float]:
        rainy, clean = self.session.to(batch["rainy"]), self.session.to(batch["clean"])
        with self.session.autocast():
            loss, parts = task_loss(self.model, self.teacher, self.generators, rainy, clean, self.rng, self.config)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {**parts, "loss": loss.item()}

    def state(self) -> dict:
        return {"replay_rng": self.rng.get_state()}

    def load_state(self, state: dict) -> None:
        self.rng = self._seeded(state["step"])
        if self.session.world == 1:
            self.rng.set_state(state["replay_rng"])


def _train_task(
    config: ContinualConfig, session: Session, bank: GeneratorBank, index: int, previous: Path | None
) -> Path:
    """Train one task of the stream on the one loop (resuming mid-task from its `last.pt`); returns its `final.pt`."""
    folder = task_dir(config, index)
    names = list(config.stream) if method_of(config).joint else [config.stream[index]]
    seed_everything(config.seed + index)
    dataset, total, warmup = _task_data(config, session, names, index)
    student = session.prepare(build_model(config.model.name, **config.model.kwargs))
    if previous is not None:
        load_weights(student, load_state(previous)["weights"], str(previous))
    elif config.init:
        load_weights(student, load_state(config.init)["weights"], config.init)
    teacher, generators = _replay_sources(config, session, bank, index, student)
    step = ReplayStep(student, teacher, generators, session, config, index)
    fresh = previous is None and not config.init
    plateau = Plateau(config.plateau_gain, config.plateau_window * len(names), config.lr_drops) \
        if config.plateau_window > 0 else None  # fmt: skip
    val = _validation_set(config, names) if plateau else None
    plan = Plan(
        total=total,
        schedule=cosine(total, warmup, config.lr, config.min_lr) if plateau is None else warmup_constant(warmup),
        data=lambda start: batches(dataset, config.batch_size, config.seed + index, session, start, config.workers),
        desc=f"task {index + 1}/{len(task_names(config))} {names[0]}",
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        validate=(lambda model: {"val_psnr": validate(model, val, session.device)}) if plateau else None,
        validate_every=config.validate_every,
        plateau=plateau,
        earliest_stop=config.plateau_min_fresh * len(names) if fresh else 0,
        config=config_to_dict(config),
    )
    step.wrap()
    outcome = fit(step, plan, folder, session, resume=folder / LAST)
    final = folder / "final.pt"
    if session.main:
        result = student
        if plateau is not None and (folder / "best.pt").is_file():  # the task's result is its best validation
            result = build_model(config.model.name, **config.model.kwargs)
            load_weights(result, load_state(folder / "best.pt")["weights"], str(folder / "best.pt"))
        save_checkpoint(final, unwrap(result), config=config_to_dict(config), task=index, step=outcome.step)
        record = {"datasets": names, "iterations": outcome.step, "cap": total, "stopped": outcome.stopped,
                  "seconds_this_run": outcome.seconds_this_run}  # fmt: skip
        if plateau is not None:
            record.update(best_val_psnr=outcome.best["metric"], best_step=outcome.best["step"],
                          lr_drops=outcome.lr_drops)  # fmt: skip
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
    if not (method_of(config).replays and index > 0):
        return None, None
    teacher = copy.deepcopy(student).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    if config.replay_source == "renderer":
        return teacher, [RenderedRain(n, config.render_size) for n in config.stream[:index]]
    sources = [bank.load(n, session.device) for n in config.stream[:index]]  # a parametric memory is a domain
    return teacher, [memory_replay(s, config.patch_size) if isinstance(s, RainDomain) else s for s in sources]


def memory_replay(domain: RainDomain, patch: int) -> RenderedRain:
    """A parametric memory replays as it was fitted: on a canvas CANVAS x the patch, cropped at the centre (4 x
    cheaper than the built-in sets' 256 for 64-pixel patches, and the statistics the fit matched)."""
    return RenderedRain(domain, CANVAS * patch, center=True)


def _validation_set(config: ContinualConfig, names: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every `<name>/val` pair of the task as whole (rainy, clean) images (training scenes, never test ones)."""
    pairs = []
    for name in names:
        dataset = PairedDataset(_folder(config, name) / "val", patch_size=None)
        pairs += [(item["rainy"], item["clean"]) for item in (dataset[i] for i in range(len(dataset)))]
    return pairs


@torch.no_grad()
def validate(model: nn.Module, pairs: list[tuple[torch.Tensor, torch.Tensor]], device: torch.device) -> float:
    """Mean PSNR (RGB, dB) of the network's prediction over the validation pairs; leaves the model in eval mode."""
    model.eval()
    scores = [float(psnr(prediction(model(rainy[None].to(device))).float().cpu(), clean[None]).clamp(max=100.0))
              for rainy, clean in pairs]  # fmt: skip
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
