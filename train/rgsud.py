"""RGSUD: unpaired de-raining with a reward pool and a self-reinforcement stage, on the CSUD framework.

Stage 1 (per iteration, rainy crops O and clean crops B of other scenes):
  F(x) = x - C(x), C the DEM U-Net (rain estimate).        pseudo rainy  Ob = T(B, F(O))
  pseudo pair (B, R(Ob)); real de-rained Ba = R(O); re-rain checks Oa = T(Ba, F(O)), Oa2 = T(Ba, Ob - B),
  Ob2 = T(R(Ob), Ob - B); self-reconstruction S1 = T(B, F(B)), S2 = T(B, F(Ba)), S3 = T(B, F(R(Ob))).
  T + DEM:  5 [L1(S1, B) + L1(S2, B)] + 10 L_cc(B, Ob) + sum_k LSGAN(D(fake_k), real) + L1(C(Ob), B)
  R:        L1(R(Ob), B) - log10 SSIM(R(Ob), B) + 0.5 [L1(S3, B) + L1(S2, B)]
  D:        LSGAN(D(O), real) + LSGAN(D(Ob), fake)
  (VGG19 perceptual loss of CSUD left out: ImageNet weights cannot be had offline.)
Every `sweep_every` iterations the reward pool re-derains every rainy training image (eval mode, full size),
scores new output and current reward with the offline scorer, and keeps the better one (rewards carry no
gradient; a replacement whose colour drifts from the input beyond `colour_drift` is rejected).
Stage 2 starts from stage 1: DEM is replaced by the rewards (F(O) = O - reward), the de-rainer loss becomes
PSNR loss + SSIM loss on the pseudo pair (weight 1) + 0.8 MSE(R(O), reward crop); recycling continues; training
stops at `stage2_iterations` or when validation PSNR has not improved for `patience` validations (the loop's
plateau rule with no halving). Each stage is `RewardStep` on the one loop (`fit`), its files prefixed by the stage
(`stage1_last.pt`, `stage2_best.pt`, `stage2_log.csv`...).
Plug-in mode (`init` = a supervised checkpoint): skip stage 1, seed the pool with the pretrained network's
outputs, train the auxiliaries (rain transfer, DEM, critic) for `plugin_warmup` iterations at the stage-1
learning rate with the de-rainer frozen, then run stage 2 to fine-tune it on unpaired data. Without the warm-up
the pseudo pairs come from an untrained rain transfer (measured in benchmarks/results/reward_synthetic.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from derain.config import config_to_dict, save_resolved
from derain.data.datasets import UnpairedDataset
from derain.data.io import read_image, to_tensor, to_uint8
from derain.data.pairing import DatasetError, paired_folder
from derain.models import (
    CheckpointError,
    build_model,
    load_model,
    load_weights,
    prediction,
    run_padded,
    save_checkpoint,
)
from derain.models.registry import ModelSpec, load_torch_file
from derain.quality.scorers import SCORERS, Scorer, fit_scorer
from derain.train.evaluation import evaluate_folder
from derain.train.loop import LAST, Plan, Plateau, Schedule, Step, fit, milestones
from derain.train.losses import channel_consistency, lsgan, psnr_loss, ssim_loss
from derain.train.session import Session, batches, seed_everything
from derain.train.state import load_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnpairedConfig:
    rain_data: str  # rainy training images (no clean partners)
    clean_data: str  # clean images of other scenes
    test_data: str = ""  # paired folder (rain/ + norain/) used only for measurement and the stage-2 plateau
    model: ModelSpec = ModelSpec("nafnet_csud")
    transfer: dict = field(default_factory=lambda: {"width": 64, "blocks": 6})
    discriminator: dict = field(default_factory=lambda: {"ndf": 64})
    dem: dict = field(default_factory=lambda: {"width": 32})
    out: str = "runs/rgsud"
    init: str = ""  # plug-in mode: a supervised checkpoint to fine-tune with stage 2 only
    # plug-in mode: auxiliaries-only iterations before the de-rainer trains ([guess] 1000; 400 measured to cut the
    # damage of the first 100 stage-2 iterations from -13 to -4.5 dB, benchmarks/results/reward_synthetic.md)
    plugin_warmup: int = 1000
    patch_size: int = 256
    batch_size: int = 2
    lr: float = 2e-4
    betas: tuple[float, ...] = (0.9, 0.999)
    stage1_iterations: int = 100_000
    milestones: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)  # x0.5, fractions of stage 1
    stage2_iterations: int = 30_000
    stage2_lr: float = 5e-5
    patience: int = 3  # validations without improvement before stage 2 stops
    sweep_every: int = 2000
    val_every: int = 2000
    # niqe | rain_cnn | combined, fitted offline on the training folders; the rain CNN ranks a run's outputs with
    # PSNR far better than NIQE (benchmarks/results/reward_synthetic.md, scorer table)
    scorer: str = "rain_cnn"
    scorer_path: str = ""  # a saved scorer to reuse instead of fitting
    niqe_block: int = 64
    colour_drift: float = 0.03
    self_rec_weight: float = 0.5
    transfer_self_weight: float = 5.0
    cc_weight: float = 10.0
    der_weight: float = 1.0  # lambda1
    sr_weight: float = 0.8  # lambda2
    snapshots: bool = False  # keep the de-rainer at every sweep (scorer validation)
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 728
    device: str = "auto"


class RewardPool:
    """One reward per rainy training image: the best-scored de-rained output so far (uint8 RGB, in memory)."""

    def __init__(self, size: int) -> None:
        self.images: list[np.ndarray | None] = [None] * size
        self.scores = torch.full((size,), float("inf"))
        self.history: list[dict] = []  # one row per sweep

    def state(self) -> dict:
        """Plain types and tensors (a weights-only load reads it back)."""
        images = [None if image is None else torch.from_numpy(image) for image in self.images]
        return {"images": images, "scores": self.scores, "history": self.history}

    def load(self, state: dict) -> None:
        self.images = [None if image is None else np.asarray(image.numpy()) for image in state["images"]]
        self.scores, self.history = state["scores"], state["history"]

    @torch.no_grad()
    def sweep(
        self,
        model: nn.Module,
        files: list[Path],
        scorer: Scorer,
        device: torch.device,
        step: int,
        colour_drift: float,
        clean_files: list[Path] | None = None,
    ) -> dict:
        """De-rain every image, replace rewards the scorer prefers; returns (and records) the sweep's figures.

        `clean_files` (paired synthetic data only) lets the sweep report whether replacements raised PSNR;
        it never influences the decision.
        """
        was_training = model.training
        model.eval()
        replaced = rejected = improved = 0
        for index, path in enumerate(files):
            rainy = to_tensor(read_image(path))[None].to(device)
            output = run_padded(model, rainy).clamp(0, 1)
            new_score = float(scorer.score(output)[0])
            if self.images[index] is not None and not new_score < float(self.scores[index]):
                continue
            if _chroma_drift(output, rainy) > colour_drift:
                rejected += 1
                continue
            if self.images[index] is not None and clean_files is not None:
                clean = to_tensor(read_image(clean_files[index]))[None].to(device)
                before = to_tensor(self.images[index])[None].to(device)
                improved += int(F.mse_loss(output, clean) < F.mse_loss(before, clean))
            replaced += int(self.images[index] is not None)
            self.images[index] = to_uint8(output[0].cpu())
            self.scores[index] = new_score
        model.train(was_training)
        filled = torch.isfinite(self.scores)
        row = {
            "step": step,
            "mean_score": float(self.scores[filled].mean()) if filled.any() else float("nan"),
            "filled": int(filled.sum()),
            "replaced": replaced,
            "rejected_colour": rejected,
        }
        if clean_files is not None:
            row["replacements_raising_psnr"] = improved
        self.history.append(row)
        return row


def load_scorer(path: str | Path) -> Scorer:
    """A scorer saved by `Scorer.save`, read weights-only (CheckpointError for a bad or unsafe file)."""
    state = load_torch_file(path, "reward scorer")
    if not isinstance(state, dict) or "name" not in state:
        raise CheckpointError(f"{path}: not a saved reward scorer (expected a dict with its 'name')")
    return SCORERS.get(state["name"]).from_state(state)


def _chroma_drift(output: torch.Tensor, rainy: torch.Tensor) -> float:
    """Mean absolute change of the colour components (pixel minus its grey level): rain is achromatic."""

    def chroma(x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(1, keepdim=True)

    return float((chroma(output) - chroma(rainy)).abs().mean())


def _build(name: str, kwargs: dict, device: torch.device) -> nn.Module:
    return build_model(name, **kwargs).to(device)


def prepare_scorer(config: UnpairedConfig, dataset: UnpairedDataset, out: Path) -> Scorer:
    """Reuse `scorer_path`, or a scorer saved in the run folder, or fit one on the training folders."""
    saved = Path(config.scorer_path) if config.scorer_path else out / "scorer.pt"
    if saved.is_file():
        return load_scorer(saved)
    clean = [to_tensor(read_image(p)) for p in dataset.clean_files[:64]]
    rainy = [to_tensor(read_image(p)) for p in dataset.rainy_files[:64]]
    scorer = fit_scorer(config.scorer, clean, rainy, block=config.niqe_block)
    out.mkdir(parents=True, exist_ok=True)
    scorer.save(out / "scorer.pt")
    return scorer


STAGES = ("stage1", "stage2")


def train_unpaired(config: UnpairedConfig, resume: str | None = None) -> dict:
    """Stage 1 (unless plug-in) then stage 2; returns the summary (also `out/summary.json`)."""
    session = Session.start(config.device, amp=False, channels_last=False)
    device = session.device
    out = Path(config.out)
    dataset = UnpairedDataset(config.rain_data, config.clean_data, config.patch_size, seed=config.seed)
    if config.test_data:
        paired_folder(config.test_data, check=True)
    if config.init and not Path(config.init).is_file():
        raise DatasetError(f"init checkpoint not found: {config.init}")
    if resume is None and (out / "summary.json").exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume auto to continue it or choose another out")
    save_resolved(config, out)
    seed_everything(config.seed)
    scorer = prepare_scorer(config, dataset, out)
    paired_clean = _paired_clean(config, dataset)

    derainer = _build(config.model.name, config.model.kwargs, device)
    transfer = _build("rain_transfer", config.transfer, device)
    dem = _build("dem_unet", config.dem, device)
    critic = _build("patch_discriminator", config.discriminator, device)
    if config.init:
        pretrained = load_model(config.init)
        if pretrained.spec["name"] != config.model.name:
            raise CheckpointError(
                f"init checkpoint {config.init} holds a {pretrained.spec['name']!r}; "
                f"config.model is {config.model.name!r}"
            )
        load_weights(derainer, pretrained.state_dict(), config.init)
    pool = RewardPool(len(dataset))
    dataset.rewards = pool.images
    nets = {"derainer": derainer, "transfer": transfer, "dem": dem, "critic": critic}
    summary: dict = {"stages": {}, "scorer": config.scorer}
    for stage in ["stage2"] if config.init else list(STAGES):
        record_file = out / f"{stage}_record.json"
        if resume == "auto" and record_file.is_file():  # a finished stage: its networks and pool carry on
            summary["stages"][stage] = json.loads(record_file.read_text())
            state = load_state(out / f"{stage}_{LAST}")
            for name, net in nets.items():
                net.load_state_dict(state["networks"][name])
            pool.load(state["method"]["pool"])
            dataset.rewards = pool.images
            set_rng_state(state["rng"])  # the next stage draws on from where this one ended, as in one run
            continue
        step = RewardStep(stage, config, nets, dataset, pool, scorer, paired_clean, device, out)
        summary["stages"][stage] = _run_stage(step, config, out, resume == "auto")
        record_file.write_text(json.dumps(summary["stages"][stage], indent=2))
    summary["reward_history"] = pool.history
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot_rewards(pool.history, out / "reward_scores.png")
    return summary


def _paired_clean(config: UnpairedConfig, dataset: UnpairedDataset) -> list[Path] | None:
    """Clean partners of the rainy training images, when the rainy folder sits in a paired layout (diagnostics)."""
    sibling = Path(config.rain_data).parent / "norain"
    if not sibling.is_dir():
        return None
    names = {p.name: p for p in sibling.iterdir()}
    files = [names.get(p.name) for p in dataset.rainy_files]
    return files if all(files) else None


class RewardStep(Step):
    """One RGSUD iteration of a stage (`_iteration`: rain transfer + DEM, de-rainer, critic); after it, the reward
    sweeps (and snapshots) of the stage. Its state is the reward pool. In plug-in mode stage 2 starts with
    `plugin_warmup` iterations in which only the auxiliaries train (the de-rainer frozen)."""

    def __init__(self, stage: str, config: UnpairedConfig, nets: dict[str, nn.Module], dataset: UnpairedDataset,
                 pool: RewardPool, scorer: Scorer, paired_clean: list[Path] | None, device: torch.device,
                 out: Path) -> None:  # fmt: skip
        self.stage, self.config, self.dataset, self.pool, self.scorer = stage, config, dataset, pool, scorer
        self.paired_clean, self.device, self.out = paired_clean, device, out
        self.second = stage == "stage2"
        self.warmup = config.plugin_warmup if self.second and config.init else 0  # auxiliaries only
        self.total = (config.stage2_iterations + self.warmup) if self.second else config.stage1_iterations
        self.lr = config.stage2_lr if self.second else config.lr
        betas = tuple(config.betas)
        derainer, transfer, dem, critic = (nets[n] for n in ("derainer", "transfer", "dem", "critic"))
        self.networks = nets
        self.optimizers = {
            "derainer": torch.optim.Adam(derainer.parameters(), lr=self.lr, betas=betas),
            "transfer": torch.optim.Adam([*transfer.parameters(), *dem.parameters()], lr=self.lr, betas=betas),
            "critic": torch.optim.Adam(critic.parameters(), lr=self.lr, betas=betas),
        }
        if self.warmup > 0:
            _freeze(derainer, True)
        self.start_rows: list[dict] = []  # stage 2's validation of the network it starts from

    def schedule(self) -> Schedule:
        """Stage 1 halves at its milestones; a plug-in warm-up runs at stage 1's rate, then stage 2's."""
        decay = milestones([int(f * self.total) for f in self.config.milestones] if not self.second else [])
        warm = self.config.lr / self.lr
        return lambda step: decay(step) * (warm if step < self.warmup else 1.0)

    def __call__(self, batch: dict, step: int) -> dict[str, float]:
        rainy, clean = batch["rainy"].to(self.device), batch["clean"].to(self.device)
        reward = batch["reward"].to(self.device) if self.second else None
        has_reward = batch["has_reward"].to(self.device).float().view(-1, 1, 1, 1) if self.second else None
        return _iteration(self.config, self.second, self.networks, self.optimizers, rainy, clean, reward, has_reward,
                          train_derainer=step >= self.warmup)  # fmt: skip

    def after(self, step: int) -> None:
        if step == self.warmup:  # the auxiliaries have warmed up: the de-rainer trains from here
            _freeze(self.networks["derainer"], False)
        if step > self.warmup and ((step - self.warmup) % self.config.sweep_every == 0 or step == self.total):
            self.sweep(step)["stage"] = self.stage
            if self.config.snapshots:
                save_checkpoint(self.out / "snapshots" / f"{self.stage}_{step:07d}.pt", self.result(), step=step)

    def sweep(self, step: int) -> dict:
        return self.pool.sweep(self.result(), self.dataset.rainy_files, self.scorer, self.device, step,
                               self.config.colour_drift, self.paired_clean)  # fmt: skip

    def result(self) -> nn.Module:
        return self.networks["derainer"]

    def state(self) -> dict:
        return {"stage": self.stage, "pool": self.pool.state(), "start_rows": self.start_rows}

    def load_state(self, state: dict) -> None:
        self.pool.load(state["pool"])
        self.start_rows = state.get("start_rows", [])
        self.dataset.rewards = self.pool.images
        if state["step"] >= self.warmup:
            _freeze(self.networks["derainer"], False)


def _run_stage(step: RewardStep, config: UnpairedConfig, out: Path, resume: bool) -> dict:
    """One RGSUD stage on the loop: stage 2 first validates the network it starts from (the first candidate for
    `stage2_best.pt`, held still through a plug-in warm-up) and stops at a validation plateau; stage 1 runs its
    iterations. Returns the stage's record."""
    last = out / f"{step.stage}_{LAST}"
    resuming = resume and last.is_file()
    start = {"metric": float("-inf")}
    if step.second and not resuming:
        if step.pool.history == []:  # plug-in mode: seed the pool with the pretrained network's outputs
            step.sweep(0)
        if config.test_data:
            training = step.result().training
            scores = _validation(step.result(), config, step.device)
            step.result().train(training)
            start = {"metric": scores["psnr_rgb"]}
            step.start_rows = [{"step": step.warmup, **scores}]
            save_checkpoint(out / f"{step.stage}_best.pt", step.result(), step=0, validation=scores)
    plateau = None
    if step.second and config.test_data:
        plateau = Plateau(gain=1e-3, window=config.patience * config.val_every, drops_allowed=0,
                          best=start["metric"], best_step=step.warmup)  # fmt: skip
    plan = Plan(
        total=step.total,
        schedule=step.schedule(),
        data=lambda first: batches(step.dataset, config.batch_size, config.seed, Session(step.device), first),
        desc=f"rgsud {step.stage}",
        log_every=config.log_every,
        checkpoint_every=config.checkpoint_every,
        validate=(lambda model: _validation(model, config, step.device)) if config.test_data else None,
        validate_every=config.val_every,
        validate_from=step.warmup,
        plateau=plateau,
        best_gain=1e-3,
        prefix=f"{step.stage}_",
        start_best=start["metric"],
        config=config_to_dict(config),
    )
    outcome = fit(step, plan, out, Session(step.device), resume=last if resuming else None)
    if outcome.stopped == "plateau":
        log.info("stage 2: validation plateau after %d iterations", outcome.step)
    final = save_checkpoint(out / f"{step.stage}_final.pt", step.result(), step=outcome.step,
                            config=config_to_dict(config))  # fmt: skip
    validation = step.start_rows + [{k: v for k, v in row.items() if k not in ("lr", "decision")} for row in
                                    outcome.history]  # fmt: skip
    return {"validation": validation, "done": True, "iterations": outcome.step - step.warmup,
            "warmup_iterations": step.warmup, "seconds_this_run": outcome.seconds_this_run,
            "checkpoint": str(final), "stopped": outcome.stopped}  # fmt: skip


def _validation(derainer: nn.Module, config: UnpairedConfig, device: torch.device) -> dict[str, float]:
    """The de-rainer's mean metrics on `test_data`, PSNR (RGB) first (what counts)."""
    scores = evaluate_folder(derainer, config.test_data, device=device, progress=False)["mean"]
    return {"psnr_rgb": scores["psnr_rgb"], **scores}


def _freeze(net: nn.Module, frozen: bool) -> None:
    """Hold a network still (eval mode, no gradients) while the others train, or release it."""
    net.train(not frozen)
    for parameter in net.parameters():
        parameter.requires_grad_(not frozen)


def _iteration(
    config: UnpairedConfig,
    second: bool,
    nets: dict[str, nn.Module],
    opts: dict[str, torch.optim.Optimizer],
    rainy: torch.Tensor,
    clean: torch.Tensor,
    reward: torch.Tensor | None,
    has_reward: torch.Tensor | None,
    train_derainer: bool = True,
) -> dict[str, float]:
    R, T, C, D = nets["derainer"], nets["transfer"], nets["dem"], nets["critic"]

    def rain_of(x: torch.Tensor) -> torch.Tensor:
        return x - C(x)

    if second:  # DEM switched to rewards: the rain of a real rainy image is O - reward
        estimate = torch.where(has_reward > 0, reward, C(rainy))
        ref_rainy = rainy - estimate
    else:
        ref_rainy = rain_of(rainy)
    pseudo = T(clean, ref_rainy)  # Ob
    ref_pseudo = pseudo - clean  # the exact rain of Ob: its clean image is known
    derained_pseudo = prediction(R(pseudo.detach()))  # R(Ob)
    derained = prediction(R(rainy))  # Ba
    fakes = [pseudo, T(derained, ref_pseudo), T(derained, ref_rainy), T(derained_pseudo, ref_pseudo)]
    s1 = T(clean, rain_of(clean))
    s2 = T(clean, rain_of(derained))
    s3 = T(clean, rain_of(derained_pseudo))

    adversarial = sum(lsgan(D(f), True) for f in fakes)
    dem_loss = F.l1_loss(C(pseudo.detach()), clean)
    loss_t = (
        config.transfer_self_weight * (F.l1_loss(s1, clean) + F.l1_loss(s2, clean))
        + config.cc_weight * channel_consistency(clean, pseudo)
        + adversarial
        + dem_loss
    )
    self_rec = config.self_rec_weight * (F.l1_loss(s3, clean) + F.l1_loss(s2, clean))
    row = {}
    if second:
        pair = psnr_loss(derained_pseudo, clean) + ssim_loss(derained_pseudo, clean)
        mask = has_reward
        sr = ((derained - reward).pow(2) * mask).sum() / (mask.sum() * derained[0].numel()).clamp_min(1)
        loss_r = config.der_weight * pair + config.sr_weight * sr + self_rec
        row["self_reinforcement"] = sr.item()
    else:
        pair = F.l1_loss(derained_pseudo, clean) + ssim_loss(derained_pseudo, clean)
        loss_r = pair + self_rec
    for name in ("transfer", "derainer"):
        opts[name].zero_grad(set_to_none=True)
    if train_derainer:
        (loss_t + loss_r).backward()  # both backward passes before both steps, as CSUD
        opts["derainer"].step()
    else:
        loss_t.backward()
    opts["transfer"].step()

    loss_d = lsgan(D(rainy), True) + lsgan(D(pseudo.detach()), False)
    opts["critic"].zero_grad(set_to_none=True)
    loss_d.backward()
    opts["critic"].step()
    row.update(transfer=loss_t.item(), derainer=loss_r.item(), critic=loss_d.item(), pair=pair.item())
    return row


def _plot_rewards(history: list[dict], path: Path) -> None:
    """Mean reward score per sweep as a small line plot (OpenCV, no plotting dependency)."""
    import cv2

    values = [h["mean_score"] for h in history if np.isfinite(h["mean_score"])]
    if len(values) < 2:
        return
    width, height, margin = 640, 320, 40
    image = np.full((height, width, 3), 255, np.uint8)
    low, high = min(values), max(values)
    span = max(high - low, 1e-9)
    points = [
        (
            margin + int(i * (width - 2 * margin) / (len(values) - 1)),
            height - margin - int((v - low) / span * (height - 2 * margin)),
        )
        for i, v in enumerate(values)
    ]
    cv2.polylines(image, [np.array(points, np.int32)], False, (200, 60, 0), 2)
    for p in points:
        cv2.circle(image, p, 3, (0, 0, 200), -1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, "reward pool mean score per sweep (lower is better)", (10, 22), font, 0.5, 0, 1)
    cv2.putText(image, f"{high:.3f}", (2, margin), font, 0.4, 0, 1)
    cv2.putText(image, f"{low:.3f}", (2, height - margin), font, 0.4, 0, 1)
    cv2.imwrite(str(path), image)
