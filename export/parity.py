"""Measured parity of exported graphs and engines over a paired test split, against the clean targets and against
the FP32 graph's output. Every artifact runs through the runtime's backends (`derain.runtime.backends`): the code
that will run it in the product."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from derain.data.io import read_image
from derain.data.pairing import paired_folder
from derain.quality.metrics import uint8_metrics
from derain.runtime.backends import Backend, open_backend


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


def open_graph(path: str | Path) -> Backend:
    """An exported graph on onnxruntime's CPU provider (parity is measured the same on every machine)."""
    return open_backend(path, device="cpu")


def run_split(backend: Callable[[np.ndarray], np.ndarray], pairs: list[tuple[np.ndarray, np.ndarray]]
              ) -> list[np.ndarray]:  # fmt: skip
    """The RGB uint8 output of a backend or `Derainer` for every rainy RGB image (one frame at a time: sizes may
    differ). Backends take BGR frames (the frame contract); the test split is read as RGB."""
    return [np.ascontiguousarray(backend(np.ascontiguousarray(rainy[..., ::-1]))[..., ::-1]) for rainy, _ in pairs]


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
