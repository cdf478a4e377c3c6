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


def convert_legacy(path: str | Path) -> Path:
    """Rewrite a resume state saved before RNG states were tensors (NumPy arrays inside) into the plain form, in
    place (the original is kept as `<file>.legacy`). Still weights-only: NumPy's array and dtype rebuilders are the
    only classes let through, so nothing in the file can run code."""
    path = Path(path)
    legacy = path.with_name(path.name + ".legacy")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file" if not path.exists() else f"{path} is not a file")
    if legacy.exists():
        raise CheckpointError(f"{legacy} exists already (an earlier conversion's original): move it away first")
    core = np._core if hasattr(np, "_core") else np.core
    numeric = (np.uint8, np.uint16, np.uint32, np.int32, np.int64, np.float32, np.float64, np.bool_)
    allowed = [core.multiarray._reconstruct, core.multiarray.scalar, np.ndarray, np.dtype,
               *(type(np.dtype(kind)) for kind in numeric)]  # fmt: skip
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        first = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
        reason = ("it holds objects other than NumPy arrays" if "Weights only" in first
                  else f"not a readable torch file: {type(error).__name__}: {first}")  # fmt: skip
        raise CheckpointError(f"{path}: cannot convert ({reason})") from None
    rng = state.get("rng") if isinstance(state, dict) else None
    if isinstance(rng, dict) and not isinstance(rng.get("numpy"), dict) and "numpy" in rng:
        version, keys, gauss = rng["python"]
        kind, mt, position, has_gauss, cached = rng["numpy"]
        rng["python"] = {"version": version, "keys": torch.tensor(keys, dtype=torch.int64), "gauss": gauss}
        rng["numpy"] = {"kind": kind, "keys": torch.from_numpy(np.asarray(mt).astype(np.int64)),
                        "position": int(position), "has_gauss": int(has_gauss), "cached": float(cached)}  # fmt: skip
    pool = state.get("pool") if isinstance(state, dict) else None
    if isinstance(pool, dict) and "images" in pool:
        pool["images"] = [None if i is None else torch.as_tensor(np.asarray(i)) for i in pool["images"]]
    path.replace(legacy)
    save_state(state, path)
    load_state(path)  # proves the result reads weights-only
    return path


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m derain.train.state", description=convert_legacy.__doc__)
    from derain.cli import EXIT_OK, run_main

    parser.add_argument("--convert", required=True, nargs="+", metavar="FILE")
    files = parser.parse_args().convert

    def convert_all() -> int:
        for file in files:
            print(f"converted {convert_legacy(file)} (original kept as {file}.legacy)")
        return EXIT_OK

    raise SystemExit(run_main("python -m derain.train.state", convert_all))
