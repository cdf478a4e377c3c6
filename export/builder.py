"""One engine builder for `tensorrt` (Jetson, x86 data-centre/desktop) and `tensorrt_rtx` (RTX GPUs).

Strongly typed networks only: the precision is whatever the ONNX says (FP16 casts, Q/DQ nodes), so one path serves
TensorRT 10/11 and TensorRT-RTX, which has no precision flags at all. Capabilities are detected on the imported
module, never from version numbers. TensorRT-RTX builds ahead of time on a CPU-only machine for the compute
capabilities asked for; classic TensorRT builds for the GPU it runs on.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from derain.cli import InputError
from derain.gpus import TARGETS
from derain.runtime.card import current_compute_capability

log = logging.getLogger(__name__)

LIBRARIES = ("tensorrt", "tensorrt_rtx")
RTX_TARGETS = {c: t.sm for c, t in TARGETS.items() if t.tensorrt_rtx}  # names of trt.ComputeCapability


class BuilderError(InputError, RuntimeError):
    """The engine cannot be built as asked (missing library, unsupported target, parser or build failure)."""


def load_library(name: str) -> ModuleType:
    if name not in LIBRARIES:
        raise BuilderError(f"builder library must be one of {LIBRARIES}, got {name!r}")
    try:
        return importlib.import_module(name)
    except ImportError as error:
        hint = "pip install tensorrt-rtx" if name == "tensorrt_rtx" else "use the TensorRT of JetPack / the CUDA repo"
        raise BuilderError(f"{name} is not importable here ({error}); {hint}") from None


@dataclass(frozen=True)
class Features:
    """What the imported library can do, found by looking at it."""

    rtx: bool  # compute-capability targets and ahead-of-time builds without a GPU
    strongly_typed: bool
    timing_cache: bool  # meaningful only off RTX (no-op there, and it forces a GPU query)

    @classmethod
    def of(cls, trt: ModuleType) -> Features:
        rtx = hasattr(trt, "ComputeCapability")
        return cls(
            rtx=rtx,
            strongly_typed=hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"),
            timing_cache=not rtx and hasattr(trt.IBuilderConfig, "set_timing_cache"),
        )


@dataclass(frozen=True)
class ShapeProfile:
    """One optimization profile of the engine's input (N, ...) shapes."""

    minimum: tuple[int, ...]
    optimum: tuple[int, ...]
    maximum: tuple[int, ...]


@dataclass(frozen=True)
class BuildSettings:
    library: str = "tensorrt_rtx"
    targets: tuple[int, ...] = ()  # RTX compute capabilities in one engine; () = the library's default set
    optimization_level: int = 3  # 0..5: higher searches longer for faster kernels
    workspace_mib: int | None = None
    timing_cache: str | None = None  # classic TensorRT only


@dataclass
class BuiltEngine:
    path: Path
    seconds: float
    size_bytes: int
    layers_path: Path
    library: str
    version: str
    rtx: bool
    targets: tuple[int, ...]
    built_on_cc: int | None
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


def _logger(trt: ModuleType) -> Any:
    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.quiet = False  # set while probing for a GPU, whose absence TensorRT reports as errors

        def log(self, severity: Any, message: str) -> None:
            level = int(severity)
            if level <= int(trt.ILogger.Severity.ERROR) and not self.quiet:
                log.error("%s", message)
            elif level <= int(trt.ILogger.Severity.WARNING):
                log.debug("%s", message)  # RTX repeats "converting scales to fp32" for every conv

    return Logger()


def _set_targets(trt: ModuleType, config: Any, features: Features, targets: tuple[int, ...]) -> None:
    if not targets:
        return
    if not features.rtx:
        raise BuilderError(
            "compute-capability targets (--cc) are a TensorRT-RTX feature; classic TensorRT builds for the GPU it "
            "runs on (build Jetson Orin engines on the Orin)"
        )
    unknown = [t for t in targets if t not in RTX_TARGETS]
    if unknown:
        raise BuilderError(
            f"TensorRT-RTX cannot target {', '.join(f'SM{t}' for t in unknown)} (it supports "
            f"{', '.join(RTX_TARGETS.values())}; Jetson Orin is SM87 and needs classic TensorRT)"
        )
    config.num_compute_capabilities = len(targets)
    for index, target in enumerate(targets):
        capability = getattr(trt.ComputeCapability, RTX_TARGETS[target])
        if not config.set_compute_capability(capability, index):
            raise BuilderError(f"TensorRT-RTX refused compute capability SM{target} in slot {index}")
    if config.num_compute_capabilities != len(targets):
        raise BuilderError(f"asked for {len(targets)} targets, the config holds {config.num_compute_capabilities}")


def _tensor_info(tensor: Any) -> dict[str, Any]:
    return {"name": tensor.name, "dtype": str(tensor.dtype).split(".")[-1], "shape": list(tensor.shape)}


def _network_layers(network: Any) -> list[dict[str, Any]]:
    layers = []
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        outputs = [layer.get_output(i) for i in range(layer.num_outputs)]
        layers.append(
            {
                "name": layer.name,
                "type": str(layer.type).split(".")[-1],
                "outputs": [str(t.dtype).split(".")[-1] for t in outputs if t is not None],
            }
        )
    return layers


def _layer_report(trt: ModuleType, serialized: Any, network: Any, logger: Any) -> dict[str, Any]:
    """The engine inspector's layer list where the engine can be deserialized (a GPU of a target), else the parsed
    network's layers with their output types (what the strongly typed build must honour)."""
    logger.quiet = True
    try:
        engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
        reason = "the engine cannot be deserialized on this machine (no GPU of its targets)"
    except RuntimeError as error:
        engine, reason = None, str(error)
    finally:
        logger.quiet = False
    if engine is not None:
        inspector = engine.create_engine_inspector()
        report = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
        return {"source": "engine_inspector", **report}
    return {"source": "network", "reason": reason, "layers": _network_layers(network)}


def build_engine(
    onnx_path: str | Path, engine_path: str | Path, profiles: list[ShapeProfile], settings: BuildSettings
) -> BuiltEngine:
    """Parse `onnx_path` into a strongly typed network, build and save the engine and its layer report."""
    trt = load_library(settings.library)
    features = Features.of(trt)
    if not features.strongly_typed:
        raise BuilderError(f"{settings.library} {trt.__version__} has no strongly typed networks (TensorRT >= 10)")
    if not 0 <= settings.optimization_level <= 5:
        raise BuilderError(f"builder optimization level must be 0..5, got {settings.optimization_level}")
    logger = _logger(trt)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BuilderError(f"{settings.library} cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    _set_targets(trt, config, features, settings.targets)
    config.builder_optimization_level = settings.optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if settings.workspace_mib:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_mib << 20)
    cache = None
    if settings.timing_cache and features.timing_cache:
        cache_path = Path(settings.timing_cache)
        cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
        config.set_timing_cache(cache, ignore_mismatch=False)
    if network.num_inputs not in (1, 3):
        raise BuilderError(f"expected one input (or a temporal network's three), {onnx_path} has "
                           f"{network.num_inputs}")  # fmt: skip
    names = [network.get_input(i).name for i in range(network.num_inputs)]  # a temporal graph's state: same shape
    for shape in profiles:
        profile = builder.create_optimization_profile()
        for name in names:
            profile.set_shape(name, shape.minimum, shape.optimum, shape.maximum)
        if config.add_optimization_profile(profile) < 0:
            raise BuilderError(f"invalid optimization profile {shape} for inputs {names}")
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - started
    if serialized is None:
        raise BuilderError(f"{settings.library} failed to build {onnx_path} (see the errors logged above)")
    engine_path = Path(engine_path)
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    if cache is not None:
        Path(settings.timing_cache).write_bytes(bytes(cache.serialize()))
    layers_path = engine_path.with_suffix(".layers.json")
    layers_path.write_text(json.dumps(_layer_report(trt, serialized, network, logger), indent=1) + "\n")
    return BuiltEngine(
        path=engine_path,
        seconds=seconds,
        size_bytes=engine_path.stat().st_size,
        layers_path=layers_path,
        library=settings.library,
        version=trt.__version__,
        rtx=features.rtx,
        targets=settings.targets,
        built_on_cc=None if features.rtx else current_compute_capability(),
        inputs=[_tensor_info(network.get_input(i)) for i in range(network.num_inputs)],
        outputs=[_tensor_info(network.get_output(i)) for i in range(network.num_outputs)],
    )
