"""`derain-eval`: de-rain a folder with a checkpoint, write the outputs, and score them if clean images exist."""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from derain.builtin import describe_builtin, is_builtin, resolve_weights
from derain.data.io import ImageReadError, list_images, read_image, to_tensor, to_uint8, write_image
from derain.data.pairing import DatasetError, match_pairs, paired_folder
from derain.models import CheckpointError, load_model
from derain.models.tiling import tiled_forward
from derain.quality import uint8_metrics

log = logging.getLogger(__name__)
METRICS = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but torch sees no CUDA device")
    return torch.device(name)


def derain_image(model: nn.Module, rgb, device: torch.device, tile: int = 512, overlap: int = 32):  # noqa: ANN001
    """De-rain one RGB uint8 (H, W, 3) image, tiled beyond `tile` pixels; returns RGB uint8."""
    image = to_tensor(rgb)[None].to(device)
    return to_uint8(tiled_forward(model, image, tile=tile, overlap=overlap)[0])


def evaluate_folder(
    model: nn.Module,
    data: str | Path,
    out_dir: str | Path | None = None,
    device: torch.device | str = "cpu",
    tile: int = 512,
    overlap: int = 32,
    progress: bool = True,
) -> dict:
    """De-rain every image of `data/rain` (or of `data` if it has no `rain/`).

    If `data/norain` exists, pairs are matched by name and scored in both conventions. Outputs keep their
    names under `out_dir` (if given); metrics go to `out_dir/metrics.json` and `metrics.csv`.

    Returns:
        {"images": n, "mean": {metric: value}, "per_image": [{"name", metric...}]} (metrics only when paired).
    """
    data = Path(data)
    if not data.is_dir():
        raise DatasetError(f"data folder not found: {data}")
    rain_dir = data / "rain" if (data / "rain").is_dir() else data
    clean_dir = data / "norain"
    if clean_dir.is_dir():
        jobs = [(pair.rainy, pair.clean) for pair in match_pairs(rain_dir, clean_dir)]
    else:
        files = list_images(rain_dir)
        if not files:
            raise DatasetError(f"no images in {rain_dir} (expected PNG/JPEG files, or rain/ and norain/ folders)")
        jobs = [(path, None) for path in files]
    device = torch.device(device)
    model = model.to(device).eval()
    rows = []
    for rainy_path, clean_path in tqdm(jobs, desc="derain", disable=not progress or None, leave=False):
        rainy = read_image(rainy_path)
        restored = derain_image(model, rainy, device, tile, overlap)
        if out_dir is not None:
            write_image(Path(out_dir) / rainy_path.name, restored)
        row = {"name": rainy_path.name}
        if clean_path is not None:
            clean = read_image(clean_path)
            if clean.shape != rainy.shape:
                raise DatasetError(
                    f"{rainy_path.name} is {rainy.shape[:2]} but its clean image {clean_path.name} is {clean.shape[:2]}"
                )
            row.update(uint8_metrics(restored, clean, device))
        rows.append(row)
    result: dict = {"images": len(rows), "per_image": rows}
    if clean_dir.is_dir():
        result["mean"] = {m: sum(r[m] for r in rows) / len(rows) for m in METRICS}
    if out_dir is not None and "mean" in result:
        write_metrics(result, Path(out_dir))
    return result


def rainy_input_scores(folder: str | Path) -> dict[str, float]:
    """Mean metrics of a paired folder's rainy inputs against their clean images: how hard a split is."""
    rows = [uint8_metrics(read_image(pair.rainy), read_image(pair.clean)) for pair in paired_folder(folder)]
    return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}


def write_metrics(result: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    with open(out_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["name", *METRICS])
        writer.writeheader()
        writer.writerows(result["per_image"])
        writer.writerow({"name": "mean", **result["mean"]})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="derain-eval", description=__doc__)
    parser.add_argument(
        "--weights",
        "--checkpoint",
        dest="weights",
        default="builtin",
        help="checkpoint (.pt) written by derain-train, or 'builtin' (default: the shipped de-rainer)",
    )
    parser.add_argument(
        "--data",
        "--data_path",
        dest="data",
        required=True,
        help="folder with rain/ (and norain/), or a folder of rainy images",
    )
    parser.add_argument(
        "--out", default=None, help="where to write de-rained images and metrics (default: none written)"
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--tile", type=int, default=512, help="tile side for large images (pixels)")
    parser.add_argument("--overlap", type=int, default=32, help="tile overlap (pixels)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if is_builtin(args.weights):
            print(f"derain-eval: using {describe_builtin()}", file=sys.stderr)
        model = load_model(resolve_weights(args.weights))
        result = evaluate_folder(model, args.data, args.out, resolve_device(args.device), args.tile, args.overlap)
    except (CheckpointError, DatasetError, ImageReadError, RuntimeError, FileNotFoundError) as error:
        print(f"derain-eval: error: {error}", file=sys.stderr)
        return 2
    print(f"de-rained {result['images']} image(s)" + (f" into {args.out}" if args.out else ""))
    if "mean" in result:
        print("  ".join(f"{k} {v:.4f}" if k.startswith("ssim") else f"{k} {v:.2f}" for k, v in result["mean"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
