"""The video de-rainer's recipe: the shipped network, given its past, trained on rendered rainy clips.

`RealtimeTemporalNet` starts as the shipped per-frame network (`init`; its memory branch's output at zero) and is
trained on clips of `derain.data.video.render_clip` over the training scenes: every domain the shipped de-rainer
trained on plus its `randomized` rain (`storm` held out), a camera that pans, zooms or moves forward, cuts, rain that
stops and starts. Each batch is `batch_size` clips of `frames` frames unrolled as the runtime runs them: frame 0 (and,
with probability `reset_at_cut`, the first frame after a cut) has no past; every other frame gets the previous rainy
frame and the previous output, rounded to 8 bits and detached, as the runtime's state is. The loss is the shipped
recipe's (Charbonnier + edge) on every frame, plus the shipped recipe's own loss on `anchor_batch` of its single
frames (v2 rain rendered per frame), so the network stays the per-frame de-rainer where it has no past. The
per-frame weights train at `lr`, the new branch and trust map at `branch_lr`.

Validation: a fixed set of training-scene clips (never the test photos), the mean PSNR over their frames as the
runtime would produce them; plateau rule, `best.pt` and `--resume auto` as in every recipe (`train.loop.fit`);
`final.pt` is the network where the run ended (what stage 2, which trades validation PSNR for steadiness, ships).
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from derain.builtin import is_builtin, resolve_weights
from derain.config import config_to_dict, save_resolved
from derain.data.rain import domain_seed, get_domain
from derain.data.video import ClipConfig, render_clip
from derain.models import build_model, load_weights, read_checkpoint, save_checkpoint
from derain.models.registry import ModelSpec
from derain.models.temporal import from_per_frame
from derain.outputs import atomic_write_text
from derain.quality.metrics import psnr
from derain.train.loop import Plan, Plateau, Step, fit, warmup_constant
from derain.train.losses import charbonnier, restoration_loss
from derain.train.session import Session
from derain.train.shipped import ShippedConfig, default_domains, render_batch, scene_sampler
from derain.train.state import resume_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TemporalConfig:
    model: ModelSpec = ModelSpec("realtime_temporal")
    init: str = "builtin"  # the per-frame weights it starts from (a `realtime` checkpoint)
    out: str = "runs/temporal_realtime"
    domains: tuple[str, ...] = ()  # () = the shipped de-rainer's: every dataset domain and real_like
    holdout: tuple[str, ...] = ("storm",)
    randomized_fraction: float = 0.3
    frames: int = 4
    patch_size: int = 96
    batch_size: int = 4
    shots: tuple[int, ...] = (1, 2)
    dry_prob: float = 0.2
    reset_at_cut: float = 0.5
    align_noise_px: float = 0.4  # the runtime's motion estimate is off by about this much (runtime/temporal.py)
    align_failure: float = 0.15  # share of frames whose past is not aligned (the estimate found nothing)
    temporal_weight: float = 0.0  # weight of the steadiness loss (frame-to-frame change against the clean clip's)
    scale_range: tuple[float, ...] = (0.7, 1.3)
    photo_fraction: float = 0.5
    pool: int = 400
    lr: float = 1e-4  # the per-frame weights
    branch_lr: float = 1e-3  # the memory branch and trust map
    anchor_batch: int = 4  # single frames of the shipped recipe per step (0: none)
    randomized_fraction_anchor: float = 0.4
    dry_fraction_anchor: float = 0.15
    warmup_iterations: int = 50
    edge_weight: float = 0.05
    val_every: int = 250
    val_clips: int = 24
    val_pool: int = 48  # dead-leaves scenes of the validation clips (rendered at the start of every run)
    plateau_window: int = 1500
    plateau_gain: float = 0.05
    lr_drops: int = 2
    max_iterations: int = 30000
    max_minutes: float = 0.0
    seed: int = 0
    device: str = "auto"
    notes: dict = field(default_factory=dict)


def clip_batch(config: TemporalConfig, domains: tuple[str, ...], sampler: object, key: tuple, count: int
               ) -> dict[str, torch.Tensor]:  # fmt: skip
    """`count` clips: rainy and clean (B, T, 3, h, w) in [0, 1], `reset` (B, T) bool (no past at that frame) and
    `motion` (B, T, 2, 3): the camera's motion from each frame to the one before as the runtime estimates it (the
    exact motion, off by `align_noise_px`, or none for `align_failure` of the frames and across cuts)."""
    rng = np.random.default_rng([config.seed, domain_seed("temporal", *key)])
    clip_config = ClipConfig(frames=config.frames, height=config.patch_size, width=config.patch_size,
                             shots=tuple(config.shots), dry_prob=config.dry_prob, scale=tuple(config.scale_range),
                             photo_fraction=config.photo_fraction)  # fmt: skip
    rainy, clean, reset, motion, exact = [], [], [], [], []
    for index in range(count):
        domain = ("randomized" if rng.random() < config.randomized_fraction else
                  domains[int(rng.integers(len(domains)))])  # fmt: skip
        clip = render_clip(domain, domain_seed(config.seed, *key, index), clip_config, "train", sampler)
        rainy.append(torch.from_numpy(clip.rainy))
        clean.append(torch.from_numpy(clip.clean))
        flags = np.zeros(config.frames, bool)
        flags[0] = True
        for cut in clip.cuts[1:]:
            flags[cut] = rng.random() < config.reset_at_cut
        reset.append(torch.from_numpy(flags))
        exact.append(torch.from_numpy(np.where(np.isfinite(clip.motion), clip.motion, np.nan)).float())
        estimate = np.where(np.isfinite(clip.motion), clip.motion, np.eye(2, 3))
        estimate[:, :, 2] += rng.normal(0, config.align_noise_px, (config.frames, 2))
        estimate[rng.random(config.frames) < config.align_failure] = np.eye(2, 3)
        motion.append(torch.from_numpy(estimate).float())
    as_float = lambda frames: torch.stack(frames).permute(0, 1, 4, 2, 3).float() / 255.0  # noqa: E731
    return {"rainy": as_float(rainy), "clean": as_float(clean), "reset": torch.stack(reset),
            "motion": torch.stack(motion), "exact_motion": torch.stack(exact)}  # fmt: skip


def warp_onto(frame: torch.Tensor, images: tuple[torch.Tensor, ...], matrices: torch.Tensor) -> tuple:
    """`runtime.temporal.align` on tensors: (B, 3, H, W) images of the previous frame warped onto `frame` by (B, 2, 3)
    maps of frame pixel -> previous pixel (bilinear); outside the previous frame they take `frame`'s values."""
    batch, _, height, width = frame.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=frame.dtype), torch.arange(width, dtype=frame.dtype),
                            indexing="ij")  # fmt: skip
    points = torch.stack([xs, ys, torch.ones_like(xs)], dim=-1).to(frame.device)  # (H, W, 3)
    source = torch.einsum("hwk,bjk->bhwj", points, matrices.to(frame.device, frame.dtype))  # (B, H, W, 2) pixels
    outside = ((source[..., 0] < 0) | (source[..., 0] > width - 1) | (source[..., 1] < 0)
               | (source[..., 1] > height - 1)).unsqueeze(1)  # fmt: skip
    grid = torch.stack([(source[..., 0] + 0.5) / width * 2 - 1, (source[..., 1] + 0.5) / height * 2 - 1], dim=-1)
    return tuple(torch.where(outside, frame, F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                                                           align_corners=False)) for image in images)  # fmt: skip


def unroll(network: torch.nn.Module, rainy: torch.Tensor, reset: torch.Tensor, motion: torch.Tensor | None = None
           ) -> list[torch.Tensor]:  # fmt: skip
    """Run (B, T, 3, h, w) clips frame by frame as the runtime does: the state (previous frame, previous output
    rounded to 8 bits, no gradient), aligned to each frame by `motion` (B, T, 2, 3), is replaced by the frame itself
    where `reset` (B, T) is set."""
    outputs, previous_frame, previous_output = [], rainy[:, 0], rainy[:, 0]
    for t in range(rainy.shape[1]):
        frame = rainy[:, t]
        if t > 0 and motion is not None:
            with torch.no_grad():
                previous_frame, previous_output = warp_onto(frame, (previous_frame, previous_output), motion[:, t])
        fresh = reset[:, t].view(-1, 1, 1, 1).to(frame.device)
        previous_frame = torch.where(fresh, frame, previous_frame)
        previous_output = torch.where(fresh, frame, previous_output)
        out = network(frame, previous_frame, previous_output)
        outputs.append(out)
        previous_frame = frame
        previous_output = (out.detach().clamp(0, 1) * 255).round() / 255
    return outputs


def steadiness_loss(outputs: list[torch.Tensor], clean: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """Charbonnier between each output's change from the previous one and the clean clip's, both previous frames
    warped by the exact camera motion (B, T, 2, 3; NaN across cuts and at frame 0: no term there); pixels the
    previous frame did not see count as unchanged. Flicker and warping error are what it lowers."""
    terms = []
    for t in range(1, len(outputs)):
        valid = torch.isfinite(motion[:, t]).all(dim=2).all(dim=1)
        if not valid.any():
            continue
        matrices = torch.nan_to_num(motion[valid, t])
        (before,) = warp_onto(outputs[t][valid], (outputs[t - 1][valid],), matrices)
        (truth,) = warp_onto(clean[valid, t], (clean[valid, t - 1],), matrices)
        terms.append(charbonnier(outputs[t][valid] - before, clean[valid, t] - truth))
    return torch.stack(terms).mean() if terms else torch.zeros((), device=clean.device)


class TemporalStep(Step):
    """A batch of clips, unrolled -> the restoration loss on every frame, plus the shipped recipe's loss on a
    batch of its single frames (the anchor: the network with no past stays the per-frame de-rainer) -> one Adam
    step of the per-frame weights at `lr` and of the memory branch and trust map at `branch_lr`."""

    def __init__(self, network: torch.nn.Module, session: Session, lr: float, branch_lr: float, edge_weight: float,
                 temporal_weight: float = 0.0) -> None:  # fmt: skip
        self.network, self.session, self.edge_weight = network, session, edge_weight
        self.temporal_weight = temporal_weight
        branch = {id(p) for p in network.branch_parameters()}
        base = [p for p in network.parameters() if id(p) not in branch]
        self.optimizer = torch.optim.Adam(base, lr=lr)
        self.branch_optimizer = torch.optim.Adam(network.branch_parameters(), lr=branch_lr)
        self.networks = {"network": network}
        self.optimizers = {"network": self.optimizer, "branch": self.branch_optimizer}

    def __call__(self, batch: dict, step: int) -> dict[str, float]:
        rainy, clean = self.session.to(batch["rainy"]), self.session.to(batch["clean"])
        outputs = unroll(self.network, rainy, batch["reset"], batch["motion"])
        loss = sum(restoration_loss([out], clean[:, t], self.edge_weight) for t, out in enumerate(outputs))
        loss = loss / len(outputs)
        steady = torch.zeros(())
        if self.temporal_weight > 0:
            steady = steadiness_loss(outputs, clean, batch["exact_motion"])
        anchor = torch.zeros(())
        if "anchor_rainy" in batch:
            anchor_out = self.network(self.session.to(batch["anchor_rainy"]))
            anchor = restoration_loss([anchor_out], self.session.to(batch["anchor_clean"]), self.edge_weight)
        self.optimizer.zero_grad(set_to_none=True)
        self.branch_optimizer.zero_grad(set_to_none=True)
        (loss + anchor + self.temporal_weight * steady).backward()
        self.optimizer.step()
        self.branch_optimizer.step()
        return {"loss": loss.item(), "anchor": anchor.item(), "steady": steady.item()}


@torch.no_grad()
def validate(network: torch.nn.Module, val: dict[str, torch.Tensor], device: torch.device) -> dict[str, float]:
    """Mean PSNR over every frame of the validation clips as the runtime produces them (8-bit output), over the
    frames after the first (those with a past), and the steadiness loss (x255: grey levels of extra change)."""
    network.eval()
    outputs = unroll(network, val["rainy"].to(device), val["reset"], val["motion"])
    network.train()
    outputs = [(out.clamp(0, 1) * 255).round() / 255 for out in outputs]
    scores = torch.stack([psnr(out, val["clean"][:, t].to(device)).clamp(max=100) for t, out in enumerate(outputs)],
                         dim=1)  # fmt: skip
    steady = steadiness_loss(outputs, val["clean"].to(device), val["exact_motion"])
    return {"val_psnr": float(scores.mean()), "val_psnr_with_past": float(scores[:, 1:].mean()),
            "val_steady": float(steady) * 255}  # fmt: skip


def initial_weights(init: str) -> tuple[dict[str, torch.Tensor], dict, bool]:
    """The weights to start from, their network's arguments, and whether they are a temporal network's already (a
    `realtime` checkpoint: the per-frame start; a `realtime_temporal` one: a second stage)."""
    checkpoint = read_checkpoint(resolve_weights(init) if is_builtin(init) else init)
    name = checkpoint["model"]["name"]
    if name not in ("realtime", "realtime_temporal"):
        raise ValueError(f"init must be a per-frame 'realtime' checkpoint (or a 'realtime_temporal' one to continue), "
                         f"{init} holds {name!r}")  # fmt: skip
    return checkpoint["weights"], checkpoint["model"]["kwargs"], name == "realtime_temporal"


def train_temporal(config: TemporalConfig, resume: str | None = None) -> dict:
    """Train to a plateau (or the budget); returns the summary (also `<out>/summary.json`); weights `<out>/best.pt`."""
    domains = tuple(config.domains) or default_domains()
    for name in (*domains, *config.holdout):
        get_domain(name)
    leaked = sorted(set(domains) & set(config.holdout))
    if leaked:
        raise ValueError(f"held-out domains {leaked} are also training domains")
    out = Path(config.out)
    session = Session.start(config.device, amp=False)
    torch.manual_seed(config.seed)
    weights, kwargs, temporal = initial_weights(config.init)
    per_frame_kwargs = {k: v for k, v in kwargs.items() if k not in ("shrink", "bypass")}  # trained without them
    if temporal:
        network = build_model("realtime_temporal", **{**per_frame_kwargs, **config.model.kwargs})
        load_weights(network, weights, source=config.init)
    else:
        network = from_per_frame(weights, **{**per_frame_kwargs, **config.model.kwargs})
    network = session.prepare(network)
    step = TemporalStep(network, session, config.lr, config.branch_lr, config.edge_weight, config.temporal_weight)
    path = resume_file(out, resume)
    save_resolved(config, out)
    sampler = scene_sampler(config, out)  # the dead-leaves pool, cached in the run folder
    from derain.data.scenes import SceneSampler

    val_sampler = SceneSampler(config.photo_fraction, pool=config.val_pool, seed=config.seed + 1000)
    val_config = TemporalConfig(**{**config.__dict__, "frames": 6, "patch_size": 128})
    val = clip_batch(val_config, domains, val_sampler, ("validation",), config.val_clips)

    anchor_config = ShippedConfig(randomized_fraction=config.randomized_fraction_anchor,
                                  dry_fraction=config.dry_fraction_anchor, photo_fraction=config.photo_fraction,
                                  scale_range=tuple(config.scale_range), seed=config.seed)  # fmt: skip

    def data(start: int):
        for index in itertools.count(start):
            batch = clip_batch(config, domains, sampler, ("train", index), config.batch_size)
            if config.anchor_batch:
                rainy, clean, _ = render_batch(sampler, domains, anchor_config, ("anchor", index), config.anchor_batch,
                                               config.patch_size)  # fmt: skip
                batch.update(anchor_rainy=rainy, anchor_clean=clean)
            yield batch

    start_file = out / "start.json"
    if not start_file.is_file():  # the start: the score best.pt must beat (from the per-frame network)
        start = validate(network, val, session.device)
        log.info("start (%s): validation %.2f dB (frames with a past %.2f)", "stage 1" if temporal else
                 "the per-frame network", start["val_psnr"], start["val_psnr_with_past"])  # fmt: skip
        atomic_write_text(start_file, json.dumps(start, indent=2))
    start = json.loads(start_file.read_text())
    plan = Plan(
        total=config.max_iterations,
        schedule=warmup_constant(config.warmup_iterations),
        data=data,
        desc="temporal",
        log_every=50,
        checkpoint_every=config.val_every,
        validate=lambda net: validate(net, val, session.device),
        validate_every=config.val_every,
        plateau=Plateau(config.plateau_gain, config.plateau_window, config.lr_drops),
        max_seconds=config.max_minutes * 60,
        start_best=float("-inf") if temporal else start["val_psnr"],  # a second stage trades PSNR for steadiness
        config=config_to_dict(config),
    )
    outcome = fit(step, plan, out, session, resume=path)
    if session.main:  # the network where the run ended (a second stage trades validation PSNR for steadiness)
        save_checkpoint(out / "final.pt", step.result(), step=outcome.step, config=config_to_dict(config))
    summary = {"iterations": outcome.step, "stopped": outcome.stopped, "seconds": round(outcome.seconds, 1),
               "best": outcome.best, "lr_drops": outcome.lr_drops, "domains": list(domains),
               "holdout": list(config.holdout), "config": config_to_dict(config), "start": start}  # fmt: skip
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    session.close()
    return summary
