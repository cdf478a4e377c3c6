"""Evaluating a network on a folder of images: de-rain each file in its own mode, write it atomically, score it
against its clean partner in both metric conventions, and go on past bad files (listed with the reason).

Used by `derain-eval` (`derain.train.evaluate`), training validation, the benchmarks and export checks.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from derain.cli import progress as bar
from derain.data.io import (
    ImageReadError,
    Picture,
    list_images,
    read_image,
    read_picture,
    to_tensor,
    to_uint8,
    write_picture,
)
from derain.data.pairing import DatasetError, match_pairs, paired_folder
from derain.frames import MIN_SIDE
from derain.models.tiling import tiled_forward
from derain.outputs import atomic_write_text
from derain.quality.metrics import uint8_metrics

log = logging.getLogger(__name__)

METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def derain_image(model: nn.Module, rgb, device: torch.device, tile: int = 512, context: int = 96):  # noqa: ANN001
    """De-rain one RGB image, uint8 (H, W, 3) -> uint8, or float (H, W, 3) in [0, 1] -> float; tiled beyond `tile`
    pixels."""
    if rgb.dtype == np.uint8:
        image = to_tensor(rgb)[None].to(device)
        return to_uint8(tiled_forward(model, image, tile=tile, context=context)[0])
    image = torch.from_numpy(np.ascontiguousarray(rgb, np.float32)).permute(2, 0, 1)[None].to(device)
    with torch.no_grad():
        restored = tiled_forward(model, image, tile=tile, context=context)[0].clamp(0, 1)
    return restored.permute(1, 2, 0).cpu().numpy()


@dataclass
class Failure:
    name: str
    reason: str


def folder_jobs(data: Path) -> tuple[list[tuple[Path, Path | None]], bool]:
    """(rainy, clean or None) per image of `data/rain` (or of `data`), and whether the folder is paired."""
    if not data.is_dir():
        raise DatasetError(f"data folder not found: {data}" if not data.exists() else f"--data {data} is a file, a "
                           "folder is needed (rain/ and norain/, or rainy images)")  # fmt: skip
    rain_dir = data / "rain" if (data / "rain").is_dir() else data
    clean_dir = data / "norain"
    if clean_dir.is_dir():
        return [(pair.rainy, pair.clean) for pair in match_pairs(rain_dir, clean_dir)], True
    files = list_images(rain_dir)
    if not files:
        raise DatasetError(f"no images in {rain_dir} (expected PNG/JPEG files, or rain/ and norain/ folders)")
    return [(path, None) for path in files], False


def _process(model: nn.Module, rainy_path: Path, clean_path: Path | None, out_dir: Path | None,
             device: torch.device, tile: int, context: int) -> dict:  # fmt: skip
    """De-rain one file, write it in its own mode, score it; an ImageReadError / DatasetError names the problem."""
    rainy = read_picture(rainy_path)
    clean = read_picture(clean_path) if clean_path is not None else None
    if clean is not None and clean.rgb.shape != rainy.rgb.shape:
        raise DatasetError(f"{rainy_path.name} is {rainy.rgb.shape[1]}x{rainy.rgb.shape[0]} but its clean image "
                           f"{clean_path.name} is {clean.rgb.shape[1]}x{clean.rgb.shape[0]}")  # fmt: skip
    if min(rainy.rgb.shape[:2]) < MIN_SIDE:
        raise DatasetError(f"{rainy_path.name} is {rainy.rgb.shape[1]}x{rainy.rgb.shape[0]}, smaller than "
                           f"{MIN_SIDE} pixels a side")  # fmt: skip
    restored = derain_image(model, rainy.rgb, device, tile, context)
    if rainy.grey:  # what is written (and scored) is grey
        restored = np.repeat(cv2.cvtColor(restored, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if out_dir is not None:
        write_picture(out_dir / rainy_path.name, restored, rainy)
    row = {"name": rainy_path.name}
    if rainy.mode != "RGB 8-bit":
        row["mode"] = rainy.mode
    if clean is not None:
        written = Picture(restored, rainy.depth, rainy.grey, None).rgb8()
        row.update(uint8_metrics(written, clean.rgb8(), device))
        if rainy.depth == 16 or clean.depth == 16:
            row["scored_at"] = "8-bit"
    return row


def evaluate_folder(
    model: nn.Module,
    data: str | Path,
    out_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    tile: int = 512,
    context: int = 96,
    progress: bool = True,
    strict: bool = True,
) -> dict:
    """De-rain every image of `data/rain` (or of `data` if it has no `rain/`).

    If `data/norain` exists, pairs are matched by name and scored in both conventions. Outputs keep their names and
    modes (grey, alpha, 16-bit) under `out_dir` (if given), each written atomically; metrics go to
    `out_dir/metrics.json` and `metrics.csv`. With `strict` the first unreadable item raises; otherwise bad items
    (undecodable, empty, unsupported mode, size mismatch) are skipped and listed under "failed".

    Returns:
        {"images": n done, "failed": [{"name", "reason"}], "mean": {metric: value}, "per_image": [...]}
        (metrics only when paired).
    """
    jobs, paired = folder_jobs(Path(data))
    device = torch.device(device)
    model = model.to(device).eval()
    out = Path(out_dir) if out_dir is not None else None
    rows, failed = [], []
    for rainy_path, clean_path in bar(jobs, desc="derain", leave=False, enabled=progress):
        try:
            rows.append(_process(model, rainy_path, clean_path, out, device, tile, context))
        except (ImageReadError, DatasetError) as error:
            if strict:
                raise
            failed.append(Failure(rainy_path.name, str(error)))
            log.warning("skipped %s: %s", rainy_path.name, error)
    result: dict = {"images": len(rows), "failed": [vars(f) for f in failed], "per_image": rows}
    if paired and rows:
        result["mean"] = {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}
    if out is not None and (rows or failed):
        write_metrics(result, out)
    return result


def rainy_input_scores(folder: str | Path) -> dict[str, float]:
    """Mean metrics of a paired folder's rainy inputs against their clean images: how hard a split is."""
    rows = [uint8_metrics(read_image(pair.rainy), read_image(pair.clean)) for pair in paired_folder(folder)]
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}


def write_metrics(result: dict, out_dir: Path) -> None:
    """`metrics.json` (everything, failures included) and, when scored, `metrics.csv`; both written atomically."""
    atomic_write_text(out_dir / "metrics.json", json.dumps(result, indent=2) + "\n")
    if "mean" not in result:
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["name", *METRICS], extrasaction="ignore")
    writer.writeheader()
    writer.writerows(result["per_image"])
    writer.writerow({"name": "mean", **result["mean"]})
    atomic_write_text(out_dir / "metrics.csv", text.getvalue())


