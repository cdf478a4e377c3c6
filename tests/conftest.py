"""Shared fixtures: tiny built-in datasets, tiny network configurations, a GPU skip."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

# Tiny configurations of every network (same code paths, shapes that run in milliseconds on CPU).
TINY_NETWORKS = {
    "mprnet": {"n_feat": 8, "scale_unetfeats": 4, "scale_orsnetfeats": 4, "num_cab": 1},
    "prenet": {"recurrent_iter": 2, "channels": 8},
    "nafnet": {"width": 8, "enc_blk_nums": [1, 1], "middle_blk_num": 1, "dec_blk_nums": [1, 1]},
    "realtime": {"widths": [8, 16, 16], "blocks": [1, 1, 1], "decoder_blocks": [1, 1]},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _quiet_onnx_exporter() -> None:
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two built-in domains in the seeds' layout, 12 train / 4 test pairs of 64x64 each."""
    from derain.data.synth import synthesize

    root = tmp_path_factory.mktemp("syn")
    synthesize(["rain100L", "rain100H"], root, n_train=12, n_test=4, size=(64, 64), seed=0)
    return root
