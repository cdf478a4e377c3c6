"""Write built-in rain datasets to disk in the seeds' layout: `<out>/<domain>/{train,test}/{rain,norain}`.

Data v2: training scenes are dead-leaves images mixed half and half with crops of the training photos
(`data/scenes.py`); test scenes are crops of the test-only photos. Each image's rain is drawn from its domain at
the public sets' scale (streak sizes do not change with the image size), with a seed derived from (seed, domain,
split), so a dataset does not change when other domains are added and every run gives the same files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from derain.cli import progress
from derain.data.io import to_tensor, to_uint8, write_image
from derain.data.photos import background_sources, backgrounds
from derain.data.rain import domain_seed, get_domain, render_rain
from derain.data.scenes import SceneSampler

log = logging.getLogger(__name__)
SCENES_FILE = "scenes.json"
TRAINING_SCENE_SPLITS = ("train", "val")  # drawn from the training scenes; any other split from the test photos


def synthesize_split(
    domain: str,
    split: str,
    count: int,
    out_dir: str | Path,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    batch: int = 16,
) -> Path:
    """Render `count` pairs of one domain and split into `out_dir/{rain,norain}`; returns `out_dir`.

    `out_dir/scenes.json` names the source photo of every pair (`{"0001.png": "coffee.png", ...}`), so that
    scores can be broken down by scene.
    """
    get_domain(domain)  # unknown names fail before anything is written
    out_dir = Path(out_dir)
    height, width = size
    if split in TRAINING_SCENE_SPLITS:
        scenes, clean_iter = _training_scenes(count, height, width, domain_seed(seed, "background", domain, split))
    else:
        scenes = background_sources(split, count)
        clean_iter = backgrounds(split, count, height, width, seed=domain_seed(seed, "background", domain, split))
    generator = torch.Generator().manual_seed(domain_seed(seed, "rain", domain, split))
    index = 0
    with progress(total=count, desc=f"{domain}/{split}", leave=False) as bar:
        while index < count:
            chunk = [next(clean_iter) for _ in range(min(batch, count - index))]
            clean = torch.stack([to_tensor(image) for image in chunk])
            rainy = render_rain(clean, domain, generator, scale=1.0)
            for offset, image in enumerate(chunk):
                name = f"{index + offset + 1:04d}.png"
                write_image(out_dir / "norain" / name, image)
                write_image(out_dir / "rain" / name, to_uint8(rainy[offset]))
            index += len(chunk)
            bar.update(len(chunk))
    scenes = {f"{i + 1:04d}.png": name for i, name in enumerate(scenes)}
    (out_dir / SCENES_FILE).write_text(json.dumps(scenes, indent=0))
    return out_dir


def _training_scenes(count: int, height: int, width: int, seed: int) -> tuple[list[str], Iterator[np.ndarray]]:
    """Half dead-leaves, half training-photo crops: (the source of each, the images)."""
    sampler = SceneSampler(photo_fraction=0.5, pool=max(2, min(200, count // 2)), seed=seed)
    rng = np.random.default_rng(seed)
    images, sources = [], []
    for _ in range(count):
        image, source = sampler.sample(height, rng, width)
        images.append(image)
        sources.append(source)
    return sources, iter(images)


def synthesize(
    domains: list[str],
    out_root: str | Path,
    n_train: int,
    n_test: int,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    n_val: int = 0,
) -> dict[str, Path]:
    """Write train, test (and, with `n_val`, val: training scenes, for a plateau rule) splits of several domains;
    returns {domain: folder}."""
    for domain in domains:
        get_domain(domain)
    out_root = Path(out_root)
    folders = {}
    for domain in domains:
        for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
            if count > 0:
                synthesize_split(domain, split, count, out_root / domain / split, size=size, seed=seed)
        folders[domain] = out_root / domain
        log.info("wrote %s (%d train, %d test)", out_root / domain, n_train, n_test)
    return folders
