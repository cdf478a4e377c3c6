"""A training run's resume state, one way for every recipe.

- `save_state(state, path)`: atomic (temporary file, fsync, rename) through the one torch writer;
- `load_state(path)`: weights-only (nothing in the file can run code), a clear error for a bad file;
- `rng_state()` / `set_rng_state()`: Python, NumPy, torch and CUDA generators as plain types and tensors (a NumPy
  state object would need unpickling);
- `resume_file(out, resume)`: which file `--resume` means (`auto`: `<out>/last.pt` if there is one).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from derain.models.registry import CheckpointError, atomic_torch_save, read_training_state

LAST = "last.pt"


def save_state(state: dict[str, Any], path: str | Path) -> Path:
    """Write a resume state atomically; `state` holds plain types and tensors only."""
    return atomic_torch_save(state, path)


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a resume state weights-only (CheckpointError for a missing, truncated, unsafe or foreign file)."""
    return read_training_state(path)


def resume_file(out: str | Path, resume: str | None, name: str = LAST) -> Path | None:
    """The state file `--resume` names: None (start fresh), "auto" (`<out>/<name>` if it exists) or a path."""
    if not resume:
        return None
    if resume == "auto":
        path = Path(out) / name
        return path if path.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"--resume {resume}: no such checkpoint file")
    return path


def rng_state() -> dict[str, Any]:
    """Every generator a run draws from, as plain types and tensors."""
    version, keys, gauss = random.getstate()
    kind, mt, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": {"version": version, "keys": torch.tensor(keys, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": kind, "keys": torch.from_numpy(mt.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},  # fmt: skip
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    python, numpy = state["python"], state["numpy"]
    random.setstate((python["version"], tuple(int(k) for k in python["keys"].tolist()), python["gauss"]))
    keys = numpy["keys"].numpy().astype(np.uint32)
    np.random.set_state((numpy["kind"], keys, numpy["position"], numpy["has_gauss"], numpy["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
