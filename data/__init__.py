"""Datasets and the built-in rain data: paired/unpaired readers, crops and augmentation, the rain renderer and
its named domains, clean photos from scikit-image, on-disk synthesis in the seeds' layout, synthetic video."""

from __future__ import annotations

from derain.data.datasets import PairedDataset, UnpairedDataset
from derain.data.io import ImageReadError, list_images, read_image, to_tensor, to_uint8, write_image
from derain.data.pairing import DatasetError, Pair, check_pairs, match_pairs, paired_folder, seed_layout
from derain.data.rain import RAIN_DOMAINS, RainDomain, StreakLayer, get_domain, render_rain

__all__ = [
    "RAIN_DOMAINS",
    "DatasetError",
    "ImageReadError",
    "PairedDataset",
    "Pair",
    "RainDomain",
    "StreakLayer",
    "UnpairedDataset",
    "check_pairs",
    "get_domain",
    "list_images",
    "match_pairs",
    "paired_folder",
    "read_image",
    "render_rain",
    "seed_layout",
    "to_tensor",
    "to_uint8",
    "write_image",
]
