"""Where a network runs: `resolve_device("auto" | "cpu" | "cuda" | "cuda:N")` with a clear error."""

from __future__ import annotations

import torch

from derain.cli import UsageError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError([f"device {name!r} asked for, but torch sees no CUDA device (use --device cpu or auto)"])
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError([f"device {name!r} is not a device (cpu, cuda, cuda:N or auto)"]) from None
