"""Measured parity of exported graphs: onnxruntime (CPU) over a paired test split, against the clean targets and
against the FP32 graph's output."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from derain.data.io import read_image
from derain.data.pairing import paired_folder
from derain.export.calibration import graph_input, graph_output
from derain.export.onnx_export import read_metadata
from derain.quality.metrics import uint8_metrics


@dataclass
class OnnxFrames:
    """An exported graph on onnxruntime that takes and returns RGB uint8 frames (N, H, W, 3)."""

    path: Path
    io: str
    multiple: int
    fixed: tuple[int, int] | None  # (H, W) of a static graph
    session: Any

    @classmethod
    def open(cls, path: str | Path) -> OnnxFrames:
        import onnxruntime as ort

        meta = read_metadata(path)
        if "io" not in meta:
            raise ValueError(f"{path} was not written by derain-export (no 'io' in its metadata)")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        shape = session.get_inputs()[0].shape
        spatial = shape[1:3] if meta["io"] == "uint8" else shape[2:4]
        fixed = tuple(spatial) if all(isinstance(side, int) for side in spatial) else None
        return cls(Path(path), meta["io"], int(meta.get("pad_multiple", 1)), fixed, session)

    def __call__(self, frames_rgb: np.ndarray) -> np.ndarray:
        height, width = frames_rgb.shape[1:3]
        if self.fixed is not None and (height, width) != self.fixed:
            expected = f"{self.fixed[0]}x{self.fixed[1]}"
            raise ValueError(f"{self.path.name} is built for {expected} frames, got {height}x{width}")
        if self.io == "float":  # the float graph needs the caller to pad; do it as the uint8 graph does
            pad_h, pad_w = (-height) % self.multiple, (-width) % self.multiple
            frames_rgb = np.pad(frames_rgb, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        name = self.session.get_inputs()[0].name
        output = self.session.run(None, {name: graph_input(frames_rgb, self.io)})[0]
        return graph_output(output, self.io)[:, :height, :width]


def _centre_crop(image: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    if size is None:
        return image
    height, width = size
    if image.shape[0] < height or image.shape[1] < width:
        raise ValueError(f"test image {image.shape[1]}x{image.shape[0]} is smaller than the graph's {width}x{height}")
    top, left = (image.shape[0] - height) // 2, (image.shape[1] - width) // 2
    return image[top : top + height, left : left + width]


def load_split(folder: str | Path, count: int, size: tuple[int, int] | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to `count` (rainy, clean) RGB uint8 pairs of a paired folder, centre-cropped to `size` if given."""
    pairs = paired_folder(folder)[:count]
    return [(_centre_crop(read_image(p.rainy), size), _centre_crop(read_image(p.clean), size)) for p in pairs]


def run_split(graph: OnnxFrames, pairs: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """The graph's RGB uint8 output for every rainy image (one frame at a time: test images may differ in size)."""
    return [graph(rainy[None])[0] for rainy, _ in pairs]


def _mean_metrics(outputs: list[np.ndarray], targets: list[np.ndarray]) -> dict[str, float]:
    rows = [uint8_metrics(output, target) for output, target in zip(outputs, targets)]
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def parity(
    outputs: list[np.ndarray], pairs: list[tuple[np.ndarray, np.ndarray]], reference: list[np.ndarray]
) -> dict[str, float]:
    """PSNR/SSIM (RGB and Y) of `outputs` against the clean images and against the reference (FP32) outputs."""
    against_clean = _mean_metrics(outputs, [clean for _, clean in pairs])
    against_reference = _mean_metrics(outputs, reference)
    return {
        **{f"{key}_clean": value for key, value in against_clean.items()},
        **{f"{key}_fp32": min(value, 99.0) for key, value in against_reference.items()},
    }
