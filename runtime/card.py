"""Engine cards (JSON beside every engine) and the can-this-engine-run-here check the runtime uses.

Light on purpose: no torch, and TensorRT / cuda-python are imported only inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from derain import cuda_python
from derain.gpus import RTX_DEFAULT_TARGETS, RTX_SUPPORTED


def card_path(engine_path: str | Path) -> Path:
    return Path(engine_path).with_suffix(".json")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_card(engine_path: str | Path, card: dict[str, Any]) -> Path:
    path = card_path(engine_path)
    path.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def read_card(engine_path: str | Path) -> dict[str, Any]:
    path = card_path(engine_path)
    if not path.is_file():
        raise FileNotFoundError(f"no engine card {path} beside {engine_path}: rebuild the engine with derain-export")
    return json.loads(path.read_text())


def current_compute_capability() -> int | None:
    """The compute capability of CUDA device 0 as an int (86 for 8.6), or None without a usable GPU: cuda-python's
    answer (`derain.cuda_python`), else torch's if the host process already loaded it."""
    capability = cuda_python.compute_capability(0)
    if capability is not None:
        return capability
    torch = sys.modules.get("torch")  # only if the host process already loaded it
    if torch is not None and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        return major * 10 + minor
    return None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def can_run(engine_path: str | Path, compute_capability: int | None = None) -> Verdict:
    """Whether an engine can run on this machine: its library installed at the same version, and this GPU among
    its targets. `compute_capability` overrides the detected one (for checks on behalf of another machine)."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return Verdict(False, f"engine not found: {engine_path}")
    card = read_card(engine_path)
    builder = card["builder"]
    library, built_with = builder["library"], builder["version"]
    try:
        module = importlib.import_module(library)
    except ImportError:
        return Verdict(False, f"{engine_path.name} needs {library} {built_with}, which is not installed here")
    installed = getattr(module, "__version__", "unknown")
    if installed != built_with:
        return Verdict(
            False,
            f"{engine_path.name} was built with {library} {built_with}, this machine has {installed}: engines do not "
            "move between versions; rebuild it with derain-export here",
        )
    capability = compute_capability if compute_capability is not None else current_compute_capability()
    if capability is None:
        return Verdict(False, f"{engine_path.name} needs a CUDA GPU and none is visible here")
    if builder.get("rtx"):
        targets = tuple(builder.get("targets") or RTX_DEFAULT_TARGETS)
        if capability not in targets:
            advice = (
                f"rebuild with --cc {capability}"
                if capability in RTX_SUPPORTED
                else "TensorRT-RTX does not support this GPU; build with --builder tensorrt here"
            )
            return Verdict(
                False,
                f"{engine_path.name} is built for {', '.join(f'SM{t}' for t in targets)}; this GPU is "
                f"SM{capability}: {advice}",
            )
    elif builder.get("built_on_cc") != capability:
        return Verdict(
            False,
            f"{engine_path.name} was built on an SM{builder.get('built_on_cc')} GPU; TensorRT engines run on the GPU "
            f"model they were built on, this one is SM{capability}: rebuild it here",
        )
    return Verdict(True, f"{engine_path.name}: {library} {installed}, SM{capability} is a target")
