"""`export(...)`: checkpoint -> FP32 ONNX -> precision graph -> measured parity -> engines + cards, one function per
stage. Everything is checked before the first stage runs (architecture, shapes, precision for the targets)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from derain.cli import Problems, UsageError, number_problems
from derain.data.pairing import DatasetError, paired_folder
from derain.export.builder import BuildSettings, ShapeProfile, build_engine
from derain.export.calibration import calibration_folder_problems, calibration_frames, graph_input, image_size
from derain.export.onnx_export import INPUT_NAMES, check_shape, export_onnx, input_shape, read_metadata
from derain.export.parity import load_split, open_graph, parity, run_split
from derain.export.precision import (
    CALIBRATION_METHODS,
    QUANTIZED,
    check_precision,
    parse_targets,
    protect_sensitive,
    quantize,
    sensitivity_sweep,
    to_fp16,
)
from derain.models import load_model
from derain.models.padding import pad_multiple
from derain.models.registry import model_spec
from derain.outputs import output_problems, staged_folder
from derain.runtime import Derainer
from derain.runtime.card import can_run, sha256, write_card

log = logging.getLogger(__name__)

BUILDERS = ("tensorrt", "tensorrt_rtx", "onnx-only")


def parse_shape(text: str) -> tuple[int, int]:
    """"720x1280" -> (720, 1280) (height x width)."""
    try:
        height, width = (int(side) for side in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a shape is HEIGHTxWIDTH like 720x1280, got {text!r}") from None
    return height, width


def parse_target_groups(text: str | None) -> list[tuple[int, ...]]:
    """"86,89,120" -> one engine per capability; "86+89+120" -> one engine for all three. Anything else (an empty
    entry, a word, "8.6") is a ValueError that shows what a valid list looks like."""
    if not text:
        return [()]
    groups = [group.strip().split("+") for group in text.split(",")]
    if any(not part.strip().isdigit() for group in groups for part in group):
        raise ValueError(f"--cc {text!r} is not a list of compute capabilities: write them as two or three "
                         "digits, 86,89,120 for one engine each or 86+89+120 for one engine that runs on all three")
    return [parse_targets(",".join(part.strip() for part in group)) for group in groups]


@dataclass
class ExportRequest:
    weights: str
    out: str = "export_out"
    precision: str = "fp16"
    io: str = "uint8"
    shapes: tuple[tuple[int, int], ...] = ((720, 1280),)
    dynamic: tuple[tuple[int, int], tuple[int, int]] | None = None  # ((min H, min W), (max H, max W))
    builder: str = "tensorrt_rtx"
    targets: tuple[tuple[int, ...], ...] = ((),)  # engine groups; () = the library's default targets
    calib: str = "synthetic"
    calib_count: int = 32
    calib_method: str = "entropy"  # measured closer to FP32 than max (benchmarks/results/export_parity.md)
    test: str = "synthetic"  # a paired folder ({rain,norain}) or the built-in split
    test_domain: str = "rain1400"
    test_count: int = 8
    sample_size: tuple[int, int] | None = None  # calibration / parity frame size of a dynamic graph (default: shape 1)
    max_drop_db: float = 0.3  # INT8/FP8 PSNR loss against FP32 that triggers the sensitivity sweep
    optimization_level: int = 3
    opset: int = 18
    seed: int = 0


@dataclass
class ExportResult:
    onnx: dict[str, str] = field(default_factory=dict)  # precision -> path
    parity: dict[str, dict[str, float]] = field(default_factory=dict)
    engines: list[dict[str, Any]] = field(default_factory=list)
    kept_high_precision: list[str] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)  # source, method, frames asked / used, files skipped
    test_images: int = 0  # parity pairs actually used


def request_problems(request: ExportRequest, model: Any, overwrite: bool = False) -> list[str]:
    """Every error a user can make, found before any stage runs (all of them, not the first)."""
    problems = Problems()
    if request.builder not in BUILDERS:
        problems.add(f"builder must be one of {BUILDERS}, got {request.builder!r}")
    if request.calib_method not in CALIBRATION_METHODS:
        problems.add(f"calibration method must be one of {CALIBRATION_METHODS}, got {request.calib_method!r}")
    problems.extend(number_problems({"--calib-count": request.calib_count, "--test-count": request.test_count},
                                    minimum=1))  # fmt: skip
    problems.extend(number_problems({"--opt-level": request.optimization_level}, minimum=0, maximum=5))
    for group in request.targets:
        problems.attempt(lambda group=group: check_precision(request.precision, group))
    if request.builder == "tensorrt_rtx" and request.precision == "fp8" and () in request.targets:
        problems.add("FP8 engines need explicit targets of SM89 or newer (e.g. --cc 89,120)")
    if getattr(model, "temporal", False) and request.precision != "fp32":
        problems.add(f"{request.weights} is a temporal de-rainer: it exports in FP32 for now (the {request.precision} "
                     "stage calibrates and converts one-input graphs)")  # fmt: skip
    if not request.shapes:
        problems.add("give at least one --shape")
    sizes = [*request.shapes, *([request.sample_size] if request.sample_size else []), *(request.dynamic or ())]
    for height, width in sizes:
        problems.attempt(lambda h=height, w=width: check_shape(model, request.io, h, w))
    if request.dynamic:
        (low_h, low_w), (high_h, high_w) = request.dynamic
        for height, width in request.shapes:
            if not (low_h <= height <= high_h and low_w <= width <= high_w):
                problems.add(f"shape {height}x{width} is outside the dynamic range {request.dynamic}")
    if request.precision != "fp32" and str(request.calib) != "synthetic":
        problems.extend(calibration_folder_problems(request.calib))
    if request.test != "synthetic":
        problems.attempt(lambda: check_test_split(request))
    inputs = [request.weights, *(p for p in (request.calib, request.test) if p != "synthetic")]
    problems.extend(output_problems(request.out, inputs, overwrite=overwrite))
    return problems.items


def check_request(request: ExportRequest, model: Any, overwrite: bool = True) -> None:
    """Raise one `UsageError` naming every problem of `request_problems`."""
    problems = request_problems(request, model, overwrite)
    if problems:
        raise UsageError(problems)


def check_test_split(request: ExportRequest) -> None:
    """The paired parity folder: readable pairs of equal sizes, at least as large as a static graph's input."""
    pairs = paired_folder(request.test)[: request.test_count]  # DatasetError names unreadable / mismatched files
    if is_static(request):
        height, width = request.shapes[0]
        small = [p.rainy.name for p in pairs if min(np.subtract(image_size(p.rainy), (height, width))) < 0]
        if small:
            raise DatasetError(f"--test {request.test}: {len(small)} image(s) smaller than the graph's {width}x{height}"
                               f" (parity crops them to it): {', '.join(small[:5])}")  # fmt: skip


def network_context(model: Any) -> int:
    """The context tiles keep around each pixel (`derain.models.receptive.tile_context`): the largest over the
    built-in test photos under dense rain (the response reaches further where there is more to correct)."""
    import torch

    from derain.data.photos import TEST_PHOTOS, photo
    from derain.data.rain import render_rain
    from derain.models.receptive import tile_context

    contexts = []
    for name in TEST_PHOTOS:
        crop = np.ascontiguousarray(photo(name)[:256, :256])
        clean = torch.from_numpy(crop).permute(2, 0, 1)[None].float() / 255
        contexts.append(tile_context(model, render_rain(clean, "rain100H", seed=0)))
    log.info("tile context (impulse response, 99 %% of its mass): %s px -> %d", contexts, max(contexts))
    return max(contexts)


def stage_onnx(request: ExportRequest, model: Any, out: Path) -> Path:
    dynamic = not is_static(request)
    height, width = request.shapes[0]
    metadata = {
        "model": model_spec(model),
        "io": request.io,
        "pad_multiple": pad_multiple(model),
        "context": network_context(model),
        "shapes": [list(shape) for shape in request.shapes],
        "dynamic": [list(side) for side in request.dynamic] if request.dynamic else None,
        "checkpoint": str(request.weights),
        "precision": "fp32",
    }
    return export_onnx(model, out / "model_fp32.onnx", height, width, dynamic, request.opset, request.io, metadata)


def stage_precision(
    request: ExportRequest, fp32: Path, calibration: dict[str, np.ndarray], out: Path, keep: list[str] | None = None
) -> Path:
    path = out / f"model_{request.precision}.onnx"
    if request.precision == "fp16":
        to_fp16(fp32, path, calibration)
    else:
        quantize(fp32, path, request.precision, calibration, request.calib_method, keep_nodes=keep or ())
    return path


def profiles_for(request: ExportRequest) -> list[ShapeProfile]:
    """One static profile per --shape, or one dynamic profile over --dynamic with the first shape as optimum."""
    shape = lambda hw: input_shape(request.io, 1, *hw)  # noqa: E731
    if request.dynamic:
        return [ShapeProfile(shape(request.dynamic[0]), shape(request.shapes[0]), shape(request.dynamic[1]))]
    return [ShapeProfile(shape(hw), shape(hw), shape(hw)) for hw in request.shapes]


def is_static(request: ExportRequest) -> bool:
    return request.dynamic is None and len(request.shapes) == 1


def sample_size(request: ExportRequest) -> tuple[int, int]:
    """The frame size for calibration and parity: the graph's own size when static."""
    return request.shapes[0] if is_static(request) or request.sample_size is None else request.sample_size


def _test_pairs(request: ExportRequest, out: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    folder = Path(request.test)
    if request.test == "synthetic":
        from derain.data.synth import synthesize_split

        folder = out / "parity_split"
        if not (folder / "rain").is_dir():
            synthesize_split(request.test_domain, "test", request.test_count, folder, size=sample_size(request), seed=7)
    return load_split(folder, request.test_count, request.shapes[0] if is_static(request) else None)


def export(request: ExportRequest | None = None, overwrite: bool = True, model: Any = None,
           **kwargs: Any) -> ExportResult:  # fmt: skip
    """Run every stage; see `ExportRequest` for the options (`export(weights=..., precision="int8", ...)`).

    Everything is checked first (`request_problems`); the stages write into a staging folder beside `request.out`
    that replaces it only when every stage succeeded, so a failed or killed export leaves `out` as it was.
    `model`: the network of `request.weights` if the caller has loaded it already."""
    request = request or ExportRequest(**kwargs)
    model = model if model is not None else load_model(request.weights)
    check_request(request, model, overwrite)
    with staged_folder(request.out, overwrite=overwrite) as staging:
        result = _run_stages(request, model, staging)
        text = json.dumps(asdict(result), indent=2) + "\n"
        (staging / "export.json").write_text(text.replace(str(staging), str(request.out)))
    return _relocated(result, staging, Path(request.out))


def _relocated(result: ExportResult, staging: Path, out: Path) -> ExportResult:
    """The result with paths under the staging folder pointing into `out` (where the files are now)."""
    move = lambda value: str(value).replace(str(staging), str(out))  # noqa: E731
    result.onnx = {key: move(value) for key, value in result.onnx.items()}
    result.engines = [{key: move(v) if key in ("engine", "card") else v for key, v in item.items()}
                      for item in result.engines]  # fmt: skip
    return result


def _run_stages(request: ExportRequest, model: Any, out: Path) -> ExportResult:
    result = ExportResult()
    clock = time.perf_counter()
    log.info("stage 1/4: ONNX (FP32)")
    fp32 = stage_onnx(request, model, out)
    result.onnx["fp32"] = str(fp32)
    result.seconds["onnx"] = time.perf_counter() - clock

    pairs = _test_pairs(request, out)
    reference = run_split(open_graph(fp32), pairs)
    result.parity["fp32"] = parity(reference, pairs, reference)
    result.calibration = {"source": str(request.calib), "method": request.calib_method, "asked": request.calib_count,
                          "frames": 0, "skipped": []}  # fmt: skip
    result.test_images = len(pairs)
    final = fp32
    if request.precision != "fp32":
        clock = time.perf_counter()
        log.info("stage 2/4: %s graph (%d calibration frames asked from %s)", request.precision, request.calib_count,
                 request.calib)  # fmt: skip
        skipped: list[str] = []
        frames = calibration_frames(request.calib, request.calib_count, *sample_size(request), seed=request.seed,
                                    skipped=skipped)  # fmt: skip
        result.calibration.update(frames=len(frames), skipped=skipped)
        calibration = {INPUT_NAMES[request.io]: graph_input(frames, request.io)}
        final = stage_precision(request, fp32, calibration, out)
        log.info("stage 3/4: parity of the %s graph on %d test images", request.precision, len(pairs))
        result.parity[request.precision] = parity(run_split(open_graph(final), pairs), pairs, reference)
        drop = result.parity["fp32"]["psnr_rgb_clean"] - result.parity[request.precision]["psnr_rgb_clean"]
        if request.precision in QUANTIZED and drop > request.max_drop_db:
            log.info("%s loses %.2f dB against FP32 (> %.2f): per-layer sensitivity sweep", request.precision, drop,
                     request.max_drop_db)  # fmt: skip
            result.parity[f"{request.precision}_before_protection"] = result.parity[request.precision]
            target_psnr = result.parity["fp32"]["psnr_rgb_clean"] - request.max_drop_db

            def clean_psnr(path: Path) -> float:
                return parity(run_split(open_graph(path), pairs), pairs, reference)["psnr_rgb_clean"]

            result.sensitivity = sensitivity_sweep(
                fp32, request.precision, calibration, clean_psnr, out / "sweep", request.calib_method
            )
            final, result.kept_high_precision = protect_sensitive(
                fp32, final, request.precision, calibration, result.sensitivity,
                lambda path: clean_psnr(path) >= target_psnr, request.calib_method,
            )  # fmt: skip
            result.parity[request.precision] = parity(run_split(open_graph(final), pairs), pairs, reference)
        result.onnx[request.precision] = str(final)
        result.seconds["precision"] = time.perf_counter() - clock

    if request.builder != "onnx-only":
        log.info("stage 4/4: engines (%s)", request.builder)
        for group in request.targets:
            result.engines.append(stage_engine(request, final, group, result, out, pairs, reference))
    return result


def stage_engine(request: ExportRequest, onnx_path: Path, targets: tuple[int, ...], result: ExportResult,
                 out: Path, pairs: list[tuple[np.ndarray, np.ndarray]], reference: list[np.ndarray]
                 ) -> dict[str, Any]:  # fmt: skip
    suffix = "+".join(f"sm{t}" for t in targets) or "default"
    engine_path = out / f"model_{request.precision}_{suffix}.engine"
    settings = BuildSettings(request.builder, targets, request.optimization_level)
    profiles = profiles_for(request)
    built = build_engine(onnx_path, engine_path, profiles, settings)
    meta = read_metadata(onnx_path)
    card = {
        "model": meta["model"],
        "checkpoint": str(request.weights),
        "precision": request.precision,
        "io": request.io,
        "pad_multiple": meta.get("pad_multiple", 1),
        "context": meta.get("context"),
        "inputs": built.inputs,
        "outputs": built.outputs,
        "profiles": [asdict(profile) for profile in profiles],
        "builder": {
            "library": built.library,
            "version": built.version,
            "rtx": built.rtx,
            "targets": list(built.targets),
            "built_on_cc": built.built_on_cc,
            "optimization_level": request.optimization_level,
            "seconds": round(built.seconds, 3),
        },
        "onnx": {"path": onnx_path.name, "sha256": sha256(onnx_path), "bytes": onnx_path.stat().st_size},
        "engine_bytes": built.size_bytes,
        "layers": built.layers_path.name,
        "calibration": result.calibration if request.precision != "fp32" else None,
        "kept_high_precision": result.kept_high_precision,
        "parity": {
            "split": str(request.test) if request.test != "synthetic" else f"built-in {request.test_domain} test",
            "images": result.test_images,
            **result.parity.get(request.precision, result.parity["fp32"]),
            **({"before_protection": result.parity[f"{request.precision}_before_protection"]}
               if f"{request.precision}_before_protection" in result.parity else {}),  # fmt: skip
        },
    }
    card_file = write_card(engine_path, card)
    verdict = can_run(engine_path)
    if verdict:  # a GPU of the targets is here: measure the engine itself through the runtime's TensorRT backend
        with Derainer(engine_path) as engine:  # tiles test images larger than the engine's profiles
            card["parity"]["engine"] = parity(run_split(engine, pairs), pairs, reference)
    else:
        card["parity"]["engine"] = {"not_measured": verdict.reason}
    card_file = write_card(engine_path, card)
    return {"engine": str(engine_path), "card": str(card_file), "bytes": built.size_bytes, "seconds": built.seconds,
            "targets": list(targets)}  # fmt: skip
