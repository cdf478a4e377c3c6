"""Precision lives in the ONNX: FP16 typing with ModelOpt AutoCast, INT8/FP8 Q/DQ with ModelOpt ONNX PTQ.

Both run on CPU with onnxruntime and need real frames (see `calibration.py`): AutoCast decides from measured
magnitudes which nodes may go to FP16, PTQ measures activation ranges. LayerNorm-style reductions and global sums
stay FP32 in the FP16 graph (`FP32_OP_TYPES`), the fix TensorRT itself suggests for FP16 overflow in them.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from derain.cli import InputError
from derain.export.onnx_export import read_metadata, write_metadata
from derain.gpus import EXPORT_TARGETS, FP8_MIN_TARGET

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8", "fp8")
QUANTIZED = ("int8", "fp8")
CALIBRATION_METHODS = ("max", "entropy")
KNOWN_TARGETS = EXPORT_TARGETS  # TensorRT-RTX targets and Jetson Orin (derain.gpus)
FP32_OP_TYPES = ("ReduceMean", "ReduceSum", "Pow", "Sqrt", "GlobalAveragePool")
QUANTIZABLE_OP_TYPES = ("Conv", "ConvTranspose")


class PrecisionError(InputError, ValueError):
    """A precision that the requested targets cannot run."""


def parse_targets(text: str | Sequence[int] | None) -> tuple[int, ...]:
    """"86,89,120" (or a list) -> (86, 89, 120); unknown compute capabilities are an error."""
    if text is None or text == "":
        return ()
    values = [int(part) for part in text.split(",")] if isinstance(text, str) else [int(part) for part in text]
    unknown = [value for value in values if value not in KNOWN_TARGETS]
    if unknown:
        raise ValueError(f"unknown compute capability {unknown}; known: {', '.join(map(str, KNOWN_TARGETS))}")
    return tuple(dict.fromkeys(values))


def check_precision(precision: str, targets: Sequence[int]) -> None:
    """Refuse before building what cannot run: an unknown precision, or FP8 for targets older than Ada (SM89)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    old = [target for target in targets if target < FP8_MIN_TARGET]
    if precision == "fp8" and old:
        raise PrecisionError(
            f"FP8 needs compute capability {FP8_MIN_TARGET} (Ada) or newer, but the targets include "
            f"{', '.join(f'SM{t}' for t in old)}: those GPUs have no FP8 tensor cores and TensorRT refuses to compile "
            "fp8_e4m3 layers for them. Build the FP8 engine for 89/120 only, and int8 or fp16 for the others."
        )


def quantizable_nodes(onnx_path: str | Path) -> list[str]:
    """Names of the nodes PTQ puts Q/DQ on that carry weights (convolutions), in graph order."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type in QUANTIZABLE_OP_TYPES]


def _exact(names: Sequence[str]) -> list[str]:
    """ModelOpt matches node names as regular expressions: anchor and escape them."""
    return [f"^{re.escape(name)}$" for name in names]


def to_fp16(
    source: str | Path,
    destination: str | Path,
    calibration: dict[str, np.ndarray],
    keep_fp32_op_types: Sequence[str] = FP32_OP_TYPES,
    keep_fp32_nodes: Sequence[str] = (),
) -> Path:
    """Typed FP16 ONNX with AutoCast: nodes whose measured magnitudes fit FP16 go FP16; I/O types are kept."""
    import onnx
    from modelopt.onnx.autocast import convert_to_mixed_precision

    destination = Path(destination)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "calibration.npz"
        np.savez(data, **{name: array[:1] for name, array in calibration.items()})  # reference run on one frame
        model = convert_to_mixed_precision(
            str(source),
            low_precision_type="fp16",
            op_types_to_exclude=list(keep_fp32_op_types),
            nodes_to_exclude=_exact(keep_fp32_nodes) or None,
            keep_io_types=True,
            calibration_data=str(data),
            providers=["cpu"],
        )
    onnx.save(model, str(destination))
    write_metadata(destination, {**read_metadata(source), "precision": "fp16"})
    return destination


def quantize(
    source: str | Path,
    destination: str | Path,
    mode: str,
    calibration: dict[str, np.ndarray],
    method: str = "max",
    keep_nodes: Sequence[str] = (),
    only_nodes: Sequence[str] | None = None,
) -> Path:
    """INT8 or FP8 Q/DQ ONNX with ModelOpt PTQ, calibrated on CPU; the rest of the graph goes FP16.

    Args:
        keep_nodes: node names left unquantized (kept in higher precision).
        only_nodes: if given, quantize these nodes only (per-layer sensitivity).
    """
    from modelopt.onnx.quantization import quantize as modelopt_quantize

    if mode not in QUANTIZED:
        raise ValueError(f"quantize mode must be one of {QUANTIZED}, got {mode!r}")
    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {CALIBRATION_METHODS}, got {method!r}")
    destination = Path(destination)
    modelopt_quantize(
        str(source),
        quantize_mode=mode,
        calibration_data=calibration,
        calibration_method=method,
        calibration_eps=["cpu"],
        nodes_to_exclude=_exact(keep_nodes) or None,
        nodes_to_quantize=_exact(only_nodes) if only_nodes is not None else None,
        high_precision_dtype="fp16",
        output_path=str(destination),
        log_level="WARNING",
    )
    write_metadata(destination, {**read_metadata(source), "precision": mode})
    return destination


def sensitivity_sweep(
    source: str | Path,
    mode: str,
    calibration: dict[str, np.ndarray],
    score: Callable[[Path], float],
    work: str | Path,
    method: str = "max",
) -> list[tuple[str, float]]:
    """Quantize one convolution at a time and score each graph (higher is better, e.g. PSNR against FP32).

    Returns (node name, score) sorted from the most sensitive (lowest score) to the least.
    """
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for index, node in enumerate(quantizable_nodes(source)):
        path = quantize(source, work / f"only_{index:03d}.onnx", mode, calibration, method, only_nodes=[node])
        results.append((node, float(score(path))))
        path.unlink()
    return sorted(results, key=lambda item: item[1])


def protect_sensitive(
    source: str | Path,
    destination: str | Path,
    mode: str,
    calibration: dict[str, np.ndarray],
    ranking: Sequence[tuple[str, float]],
    acceptable: Callable[[Path], bool],
    method: str = "max",
    max_kept: int = 8,
) -> tuple[Path, list[str]]:
    """Keep the most sensitive convolutions in higher precision, one more at a time, until `acceptable`.

    Returns the graph written last and the nodes kept unquantized (stops at `max_kept` even if not acceptable).
    """
    kept: list[str] = []
    path = Path(destination)
    for node, _ in ranking[:max_kept]:
        kept.append(node)
        quantize(source, path, mode, calibration, method, keep_nodes=kept)
        if acceptable(path):
            break
    return path, kept
