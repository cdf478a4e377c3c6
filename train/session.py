"""Where a training run executes and what it reads: device and DDP set-up, AMP, reproducible resumable batches,
CSV logs.

DDP: launch with `torchrun --nproc_per_node N -m derain.train.cli ...`; `Session` reads the torchrun environment,
joins the process group (nccl on CUDA, gloo on CPU), and shards batches with a per-rank seed. Only rank 0
writes checkpoints, logs and evaluations.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from derain.models.device import resolve_device


@dataclass
class Session:
    """Where and how a run executes: device, DDP rank/world, AMP and memory format."""

    device: torch.device
    rank: int = 0
    world: int = 1
    amp: bool = False
    channels_last: bool = False

    @classmethod
    def start(cls, device: str = "auto", amp: bool = True, channels_last: bool = True) -> Session:
        """Join the torchrun process group if launched by torchrun; AMP and channels_last only on CUDA."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        if world > 1 and not dist.is_initialized():
            local = int(os.environ.get("LOCAL_RANK", "0"))
            chosen = resolve_device(device)
            if chosen.type == "cuda":
                torch.cuda.set_device(local)
                chosen = torch.device("cuda", local)
            dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
        else:
            chosen = resolve_device(device)
        cuda = chosen.type == "cuda"
        return cls(chosen, rank, world, amp=amp and cuda, channels_last=channels_last and cuda)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move to the device (channels_last on CUDA)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP-wrap a trained module when distributed (the bare module is kept for checkpoints)."""
        if not self.distributed:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def to(self, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.to(self.device, non_blocking=True)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def broadcast_flag(self, flag: bool) -> bool:
        """Rank 0's value on every rank (e.g. 'a checkpoint exists')."""
        if not self.distributed:
            return flag
        value = torch.tensor([int(flag)])
        dist.broadcast(value, 0)
        return bool(value.item())

    def close(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def batches(
    dataset: Dataset, batch_size: int, seed: int, session: Session, start_step: int = 0, workers: int = 0
) -> Iterator[dict]:
    """Endless batches, epoch after epoch, reproducible from (seed, step) so a resumed run sees the same data.

    Each epoch reshuffles with seed + epoch; datasets with `set_epoch` draw new crops per epoch. Resuming at
    `start_step` skips into the right epoch and position.
    """
    per_rank = max(1, batch_size // session.world)
    sampler_len = math.ceil(len(dataset) / session.world)
    per_epoch = max(1, sampler_len // per_rank) if sampler_len >= per_rank else 1
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        sets = getattr(dataset, "datasets", ())
        for part in sets:
            if hasattr(part, "set_epoch"):
                part.set_epoch(epoch)
        sampler = DistributedSampler(
            dataset, num_replicas=session.world, rank=session.rank, shuffle=True, seed=seed, drop_last=False
        )
        sampler.set_epoch(epoch)
        order = list(sampler)[skip * per_rank :]  # resume mid-epoch without loading the skipped samples
        loader = DataLoader(
            Subset(dataset, order),
            batch_size=per_rank,
            shuffle=False,
            drop_last=sampler_len >= per_rank,
            num_workers=workers,
            # its own generator: a loader draws a base seed when each epoch starts, which from the global RNG would
            # shift every later random draw of a run resumed mid-epoch (it starts its epoch at a different step)
            generator=torch.Generator().manual_seed(seed * 1000 + epoch),
        )
        yield from loader
        skip = 0
        epoch += 1


def steps_per_epoch(dataset_len: int, batch_size: int) -> int:
    return max(1, dataset_len // batch_size)


class CsvLog:
    """Append-only CSV of training scalars (one row per logged step), safe to reopen after a resume."""

    def __init__(self, path: str | Path, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.fields: list[str] | None = None
        self.started = time.perf_counter()

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        row = {"time_s": round(time.perf_counter() - self.started, 2), **row}
        new = not self.path.exists()
        if self.fields is None:
            self.fields = list(row)
            if not new:
                with open(self.path, newline="") as handle:
                    self.fields = next(csv.reader(handle), self.fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
