"""Matching rainy and clean files of a paired dataset by name, and checking the pairs before training.

Naming conventions of the public sets:
- one-to-one: `rain/001.png` <-> `norain/001.png`;
- prefixed: `rain/rain-001.png` <-> `norain/norain-001.png` (Rain100L/H);
- many rainy per clean: `rain/901_1.jpg` ... `rain/901_14.jpg` <-> `norain/901.jpg` (Rain1400).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from derain.cli import InputError
from derain.data.io import ImageReadError, list_images

RAIN_PREFIX = re.compile(r"^(rainy|rain)[-_]?", re.IGNORECASE)
CLEAN_PREFIX = re.compile(r"^(norain|no_rain|clean|gt)[-_]?", re.IGNORECASE)
VARIANT_SUFFIX = re.compile(r"^(.+)_(\d+)$")


class DatasetError(InputError, ValueError):
    """A dataset folder is missing, empty, or holds files that cannot be paired or read."""


@dataclass(frozen=True)
class Pair:
    rainy: Path
    clean: Path


def _clean_keys(stem: str) -> list[str]:
    keys = [stem]
    stripped = CLEAN_PREFIX.sub("", stem)
    if stripped != stem:
        keys.append(stripped)
    return keys


def _rainy_candidates(stem: str) -> list[str]:
    candidates = [stem]
    stripped = RAIN_PREFIX.sub("", stem)
    if stripped != stem:
        candidates.append(stripped)
    for name in list(candidates):
        variant = VARIANT_SUFFIX.match(name)
        if variant:
            candidates.append(variant.group(1))
    return candidates


def image_folder(folder: str | Path, what: str = "dataset folder") -> list[Path]:
    """The image files of a folder that must hold some (sorted); a DatasetError says what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{what} not found: {folder}" if not folder.exists() else f"{what} {folder} is a file")
    files = list_images(folder)
    if not files:
        raise DatasetError(f"{what} {folder} holds no images (PNG/JPEG/BMP/TIFF/WebP)")
    return files


def _describe(paths: list[Path], limit: int = 5) -> str:
    names = ", ".join(p.name for p in paths[:limit])
    return names + (f" (+{len(paths) - limit} more)" if len(paths) > limit else "")


def match_pairs(rain_dir: str | Path, clean_dir: str | Path) -> list[Pair]:
    """Pair every rainy image with its clean image by name.

    Raises:
        DatasetError: a folder is missing or empty, a rainy image has no clean partner, or a clean image has no
            rainy partner; the message names the files.
    """
    rain_dir, clean_dir = Path(rain_dir), Path(clean_dir)
    for folder in (rain_dir, clean_dir):
        if not folder.is_dir():
            raise DatasetError(f"dataset folder not found: {folder}")
    rainy_files, clean_files = list_images(rain_dir), list_images(clean_dir)
    if not rainy_files:
        raise DatasetError(f"no images in {rain_dir}")
    if not clean_files:
        raise DatasetError(f"no images in {clean_dir}")
    clean_by_key: dict[str, Path] = {}
    for path in clean_files:
        for key in _clean_keys(path.stem):
            clean_by_key.setdefault(key, path)
    pairs, orphans, used = [], [], set()
    for path in rainy_files:
        partner = next((clean_by_key[c] for c in _rainy_candidates(path.stem) if c in clean_by_key), None)
        if partner is None:
            orphans.append(path)
        else:
            pairs.append(Pair(path, partner))
            used.add(partner)
    unused = [p for p in clean_files if p not in used]
    problems = []
    if orphans:
        problems.append(f"{len(orphans)} rainy image(s) in {rain_dir} without a clean partner: {_describe(orphans)}")
    if unused:
        problems.append(f"{len(unused)} clean image(s) in {clean_dir} without a rainy partner: {_describe(unused)}")
    if problems:
        raise DatasetError("; ".join(problems))
    return pairs


def _image_size(path: Path) -> tuple[int, int] | None:
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    return None if image is None else image.shape[:2]


def check_pairs(pairs: list[Pair], workers: int = 4) -> None:
    """Decode every image once and compare the sizes of each pair (run before training starts).

    Raises:
        DatasetError: naming the unreadable files and the pairs whose sizes differ.
    """
    files = sorted({p.rainy for p in pairs} | {p.clean for p in pairs})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        sizes = dict(zip(files, pool.map(_image_size, files)))
    unreadable = [f for f in files if sizes[f] is None]
    mismatched = [p for p in pairs if sizes[p.rainy] and sizes[p.clean] and sizes[p.rainy] != sizes[p.clean]]
    problems = []
    if unreadable:
        problems.append(f"{len(unreadable)} unreadable image(s): {', '.join(str(f) for f in unreadable[:5])}")
    if mismatched:
        shown = ", ".join(f"{p.rainy.name} {sizes[p.rainy]} vs {p.clean.name} {sizes[p.clean]}" for p in mismatched[:5])
        problems.append(f"{len(mismatched)} pair(s) of different sizes: {shown}")
    if problems:
        raise DatasetError("; ".join(problems))


def paired_folder(root: str | Path, check: bool = True) -> list[Pair]:
    """Pairs of a `<root>/{rain,norain}` folder, checked for readability and sizes unless `check` is False."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    pairs = match_pairs(root / "rain", root / "norain")
    if check:
        check_pairs(pairs)
    return pairs


def seed_layout(root: str | Path, name: str, split: str) -> Path:
    """The folder of a dataset split in the seeds' layout: `<root>/<name>/<split>`, or `<root>/real/SPA`."""
    root = Path(root)
    if name.upper() == "SPA":
        return root / "real" / "SPA"
    return root / name / split


__all__ = ["DatasetError", "ImageReadError", "Pair", "check_pairs", "image_folder", "match_pairs", "paired_folder",
           "seed_layout"]  # fmt: skip
