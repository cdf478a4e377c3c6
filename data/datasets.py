"""Torch datasets: paired (rainy, clean) folders and unpaired (rainy folder, clean folder of other scenes)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from derain.data.augment import random_crop, random_dihedral
from derain.data.io import read_image, to_tensor
from derain.data.pairing import Pair, image_folder, paired_folder


def _sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


class PairedDataset(Dataset):
    """(rainy, clean) pairs from a `<root>/{rain,norain}` folder.

    Training samples are random `patch_size` crops with a random flip/rotation, deterministic given
    (seed, epoch, index): call `set_epoch` each epoch. With `patch_size=None`, whole images, no augmentation.

    Returns dicts {"rainy": (3, h, w), "clean": (3, h, w), "name": str}, floats in [0, 1].
    With `cache=True` each decoded pair is kept in memory after its first read (small sets on a GPU, where
    decoding PNGs every step would cost more than the training step).
    """

    def __init__(
        self,
        root: str | Path,
        patch_size: int | None = None,
        augment: bool = True,
        seed: int = 0,
        check: bool = True,
        cache: bool = False,
    ) -> None:
        self.root = Path(root)
        self.pairs: list[Pair] = paired_folder(self.root, check=check)
        self.patch_size = patch_size
        self.augment = augment and patch_size is not None
        self.seed = seed
        self.epoch = 0
        self.cache: dict[int, list[np.ndarray]] | None = {} if cache else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        pair = self.pairs[index]
        if self.cache is not None and index in self.cache:
            images = self.cache[index]
        else:
            images = [read_image(pair.rainy), read_image(pair.clean)]
            if self.cache is not None:
                self.cache[index] = images
        if self.patch_size is not None:
            rng = _sample_rng(self.seed, self.epoch, index)
            images = random_crop(images, self.patch_size, rng)
            if self.augment:
                images = random_dihedral(images, rng)
        rainy, clean = (to_tensor(image) for image in images)
        return {"rainy": rainy, "clean": clean, "name": pair.rainy.name}


class UnpairedDataset(Dataset):
    """Rainy crops from one folder and clean crops from another (different scenes), as unpaired training wants.

    Sample i takes rainy image i and a clean image drawn by (seed, epoch, i); both are cropped and flipped
    (horizontal flips only, as CSUD: rotations would turn the rain) independently. Returns {"rainy", "clean",
    "rainy_index", "name"}. If `rewards` (one uint8 RGB image or None per rainy image, e.g. RGSUD's reward pool)
    is set, samples also carry "reward" (the same window of the reward, or zeros) and "has_reward".
    """

    def __init__(self, rain_dir: str | Path, clean_dir: str | Path, patch_size: int = 256, seed: int = 0) -> None:
        self.rainy_files = self._images(rain_dir)
        self.clean_files = self._images(clean_dir)
        self.patch_size = patch_size
        self.seed = seed
        self.epoch = 0
        self.rewards: list[np.ndarray | None] | None = None

    @staticmethod
    def _images(folder: str | Path) -> list[Path]:
        return image_folder(folder)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rainy_files)

    @staticmethod
    def _flip(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
        if rng.random() < 0.5:
            return [np.ascontiguousarray(image[:, ::-1]) for image in images]
        return images

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str | int]:
        rng = _sample_rng(self.seed, self.epoch, index)
        clean_path = self.clean_files[int(rng.integers(0, len(self.clean_files)))]
        rainy_image = read_image(self.rainy_files[index])
        reward = self.rewards[index] if self.rewards is not None else None
        group = [rainy_image] if reward is None else [rainy_image, reward]
        group = self._flip(random_crop(group, self.patch_size, rng), rng)
        clean = self._flip(random_crop([read_image(clean_path)], self.patch_size, rng), rng)[0]
        sample = {
            "rainy": to_tensor(group[0]),
            "clean": to_tensor(clean),
            "rainy_index": index,
            "name": self.rainy_files[index].name,
        }
        if self.rewards is not None:
            sample["reward"] = to_tensor(group[1]) if reward is not None else torch.zeros_like(sample["rainy"])
            sample["has_reward"] = reward is not None
        return sample


def dataset_rain(train_dir: str | Path, count: int, size: int, seed: int,
                 images: Sequence[int] | None = None) -> torch.Tensor:  # fmt: skip
    """`count` grey rain layers (rainy - clean, channel max) of random `size` crops of a paired folder. With `images`,
    of the pairs at those indices only, and an image drawn again is cropped elsewhere (a crop is fixed by (seed,
    epoch, index): a repeat would be the same layer twice, which a small pool of images makes common)."""
    dataset = PairedDataset(train_dir, patch_size=size, augment=False, seed=seed)
    rng = np.random.default_rng(seed)
    pool = np.arange(len(dataset)) if images is None else np.asarray(images)
    drawn: dict[int, int] = {}
    layers = []
    for index in pool[rng.integers(0, len(pool), count)]:
        if images is not None:
            repeat = drawn.get(int(index), 0)
            dataset.set_epoch(repeat)
            drawn[int(index)] = repeat + 1
        item = dataset[int(index)]
        layers.append((item["rainy"] - item["clean"]).clamp(0, 1).amax(0, keepdim=True))
    return torch.stack(layers)
