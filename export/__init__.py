"""Checkpoint -> ONNX -> FP16 / INT8 / FP8 -> TensorRT or TensorRT-RTX engines with cards and measured parity.

`derain.export.export(weights=..., precision=..., ...)` runs every stage (see `pipeline.ExportRequest`); each
stage is also a function of its own module. Imported lazily: `import derain.export` loads no torch. Engine cards
live in `derain.runtime.card`, where the runtime reads them without importing export.
"""

from __future__ import annotations

from typing import Any


def export(*args: Any, **kwargs: Any) -> Any:
    from derain.export.pipeline import export as run

    return run(*args, **kwargs)
