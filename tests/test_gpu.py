"""The CUDA training path (bf16 autocast, channels_last, generator training, CLGID replay on the device).

Marked `gpu`: skipped without CUDA (CI), run on a GPU machine with `pytest -m gpu`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import TINY_NETWORKS

from derain.data.synth import synthesize, synthesize_split
from derain.models import build_model, stage_outputs
from derain.models.registry import ModelSpec
from derain.train.continual import ContinualConfig, train_stream
from derain.train.generator_bank import GeneratorConfig
from derain.train.state import load_state

pytestmark = pytest.mark.gpu


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float((out.double() - ref).norm() / ref.norm())


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_network_on_cuda_matches_float64_cpu(name):
    torch.manual_seed(0)
    model = build_model(name, **TINY_NETWORKS[name]).eval()
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        reference = stage_outputs(model.double()(image.double()))[0]
        model = model.float().cuda()
        previous = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            fp32 = stage_outputs(model(image.cuda()))[0].cpu()
        finally:
            torch.backends.cudnn.allow_tf32 = previous
        model = model.to(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = stage_outputs(model(image.cuda().contiguous(memory_format=torch.channels_last)))[0].float().cpu()
    assert relative_error(fp32, reference) < 1e-4
    assert relative_error(bf16, reference) < 3e-2
    assert torch.isfinite(bf16).all()


def test_clgid_stream_trains_on_cuda_with_amp(tmp_path: Path):
    root = tmp_path / "data"
    synthesize(["rain100H", "rain100L"], root, n_train=8, n_test=2, size=(64, 64), seed=5)
    synthesize_split("real_like", "test", 2, root / "real_like" / "test", size=(64, 64), seed=5)
    config = ContinualConfig(
        data_root=str(root),
        stream=("rain100H", "rain100L"),
        unseen=("real_like/test",),
        model=ModelSpec("mprnet", TINY_NETWORKS["mprnet"]),
        out=str(tmp_path / "run"),
        bank=str(tmp_path / "bank"),
        generator=GeneratorConfig(
            iterations=10, batch_size=4, background_stages=1, background_channels=8, device="cuda", cache=True
        ),
        iterations=8,
        batch_size=4,
        device="cuda",
        cache=True,
    )
    summary = train_stream(config, resume=None)
    assert summary["tasks_done"] == 2
    assert math.isfinite(summary["avg_seen_psnr_rgb"]) and math.isfinite(summary["bwt_psnr_rgb"])
    generator = load_state(tmp_path / "bank" / "rain100H" / "generator.pt")
    assert all(torch.isfinite(v).all() for v in generator["weights"].values())
    final = load_state(tmp_path / "run" / "task2_rain100L" / "final.pt")
    assert all(v.device.type == "cpu" for v in final["weights"].values())
