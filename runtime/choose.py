"""Which artifact of a folder to run here: the fastest this machine can run, or the precision asked for.

A deployment folder holds what `derain-export` wrote for several targets: engines per GPU and precision (each with
its card), ONNX graphs, the checkpoint. `choose_artifact` goes through them in this order and takes the first that
can run here, logging every one it passes over and why:

1. TensorRT engines this GPU and library can run (`derain.runtime.card.can_run`), INT8, FP8, FP16, then FP32;
   an engine without a card (built with trtexec) comes after the carded ones of its precision, read from the engine
   itself when loaded;
2. ONNX graphs: on a GPU (ONNX Runtime's CUDA provider) FP16, FP32, INT8; on the CPU FP32, INT8, FP16 (FP16 is
   emulated on CPUs: slower than FP32);
3. PyTorch checkpoints (`.pt`), on the GPU or the CPU.

`precision` other than "best" keeps only artifacts of that precision.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from derain.runtime.backends import BackendError
from derain.runtime.card import can_run, card_path, read_card

log = logging.getLogger(__name__)

PRECISIONS = ("best", "fp32", "fp16", "int8", "fp8")
ENGINE_ORDER = ("int8", "fp8", "fp16", "fp32")
ONNX_ORDER = {"gpu": ("fp16", "fp32", "int8", "fp8"), "cpu": ("fp32", "int8", "fp16", "fp8")}


@dataclass
class Choice:
    path: Path
    precision: str
    passed_over: list[str] = field(default_factory=list)  # "<name>: why", in the order considered


def name_precision(path: Path) -> str:
    """The precision a file name says (`model_fp16_sm89.engine`, `model_int8.onnx`); fp32 when it says none."""
    match = re.search(r"(?:^|[_.-])(fp32|fp16|int8|fp8)(?=[_.-]|$)", path.stem.lower())
    return match.group(1) if match else "fp32"


def _gpu_here(device: str) -> bool:
    if device == "cpu":
        return False
    from derain.runtime.card import current_compute_capability

    return current_compute_capability() is not None


def choose_artifact(folder: str | Path, precision: str = "best", device: str = "auto", backend: str | None = None
                    ) -> Choice:  # fmt: skip
    """The artifact of `folder` to load here (see the module docstring), among those `backend` (a name) loads if
    given; BackendError when none can run."""
    folder = Path(folder)
    if precision not in PRECISIONS:
        raise BackendError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not folder.is_dir():
        raise BackendError(f"not a folder of artifacts: {folder}")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if backend is not None:
        from derain.runtime.backends import BACKENDS

        suffixes = BACKENDS.get(backend).suffixes
        files = [p for p in files if p.suffix.lower() in suffixes]
    engines = [p for p in files if p.suffix.lower() in (".engine", ".plan")]
    graphs = [p for p in files if p.suffix.lower() == ".onnx"]
    checkpoints = [p for p in files if p.suffix.lower() == ".pt"]
    if not engines + graphs + checkpoints:
        which = f" that the {backend} backend loads" if backend else ""
        raise BackendError(f"{folder} holds no artifact{which} (.engine, .plan, .onnx, .pt)")
    gpu = _gpu_here(device)
    passed: list[str] = []

    def wanted(found: str) -> bool:
        return precision in ("best", found)

    def engine_precision(path: Path) -> str:
        if card_path(path).is_file():
            try:
                return str(read_card(path).get("precision", name_precision(path)))
            except (OSError, ValueError):
                pass
        return name_precision(path)

    def engine_rank(path: Path) -> tuple[int, bool, str]:
        found = engine_precision(path)
        order = ENGINE_ORDER.index(found) if found in ENGINE_ORDER else len(ENGINE_ORDER)
        return order, not card_path(path).is_file(), path.name

    ranked = sorted(engines, key=engine_rank)
    for path in ranked:
        found = engine_precision(path)
        if not wanted(found):
            passed.append(f"{path.name}: {found}, not {precision}")
            continue
        if device == "cpu":
            passed.append(f"{path.name}: engines run on a GPU, device is cpu")
            continue
        if not card_path(path).is_file():
            if not gpu:
                passed.append(f"{path.name}: an engine needs a CUDA GPU and none is visible here")
                continue
            return _chosen(path, found, passed, "no card: read from the engine itself")
        verdict = can_run(path)
        if not verdict:
            passed.append(verdict.reason)
            continue
        return _chosen(path, found, passed, verdict.reason)
    order = ONNX_ORDER["gpu" if gpu else "cpu"]
    for path in sorted(graphs, key=lambda p: (order.index(name_precision(p)), p.name)):
        found = name_precision(path)
        if not wanted(found):
            passed.append(f"{path.name}: {found}, not {precision}")
            continue
        return _chosen(path, found, passed, f"ONNX Runtime on the {'GPU' if gpu else 'CPU'}")
    for path in checkpoints:
        if precision not in ("best", "fp32", "fp16") or (precision == "fp16" and not gpu):
            passed.append(f"{path.name}: a checkpoint runs in fp32{' or fp16 (on a GPU)' if gpu else ' on a CPU'}, "
                          f"not {precision}")  # fmt: skip
            continue
        return _chosen(path, "fp32" if precision == "best" else precision, passed, "PyTorch")
    raise BackendError(f"no artifact of {folder} runs here: " + "; ".join(passed))


def _chosen(path: Path, precision: str, passed: list[str], why: str) -> Choice:
    for reason in passed:
        log.info("passed over %s", reason)
    log.info("chose %s (%s; %s)", path.name, precision, why)
    return Choice(path, precision, passed)
