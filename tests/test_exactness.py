"""Tests written to catch small plausible bugs that the other tests let through; each was planted once and seen to
fail here (the bug is named in the docstring)."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from derain.data.io import write_image
from derain.export.calibration import calibration_frames
from derain.export.onnx_export import export_onnx
from derain.models import build_model
from derain.quality import uint8_metrics
from derain.train.continual import replay


def test_replay_from_a_random_generator_adds_grey_rain():
    """Bug: replay adds the generator's coloured output instead of its grey (channel-max) version."""
    torch.manual_seed(1)
    generator = build_model("vrgnet_generator").eval()  # randomly initialised: coloured output
    with torch.no_grad():
        sample = generator(torch.randn(4, generator.nz))
    assert (sample[:, 0] - sample[:, 1]).abs().max() > 1e-3  # the raw output is not grey
    clean = torch.full((4, 3, 64, 64), 0.25)
    with torch.no_grad():
        added = replay(clean, [generator], torch.Generator().manual_seed(0)) - clean
    assert added.abs().max() > 1e-3
    assert torch.equal(added[:, 0], added[:, 1]) and torch.equal(added[:, 1], added[:, 2])


def test_uint8_metrics_read_rgb_in_rgb_order():
    """Bug: `uint8_metrics` reads its arrays as BGR (the Y weights land on the wrong channels)."""
    target = np.zeros((16, 16, 3), np.uint8)
    pred = target.copy()
    pred[..., 0] = 10  # an error in R only
    y_error = 65.481 * 10 / 255  # MATLAB luma weight of R, in Y units
    expected = 20 * math.log10(255 / y_error)
    assert abs(uint8_metrics(pred, target)["psnr_y"] - expected) < 1e-6
    blue = target.copy()
    blue[..., 2] = 10  # the same error in B weighs 24.966 / 65.481 as much
    assert uint8_metrics(blue, target)["psnr_y"] > expected + 8


def test_metrics_clamp_predictions_to_the_valid_range():
    """Bug: the clamp to [0, 1] removed from the metrics (an overshooting network would be scored on values no
    image can hold)."""
    from derain.quality.metrics import image_metrics

    target = torch.full((1, 3, 16, 16), 1.0)
    overshoot = torch.full((1, 3, 16, 16), 1.3)
    scores = image_metrics(overshoot, target)
    assert math.isinf(float(scores["psnr_rgb"][0])) and abs(float(scores["ssim_rgb"][0]) - 1) < 1e-9


class Identity(nn.Module):
    pad_multiple = 8

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # an exporter needs a parameter to trace

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image * self.scale


def test_the_uint8_graph_returns_an_identity_networks_frame_bit_exactly(tmp_path):
    """Bug: the uint8 graph scales by 254 instead of 255 (a +-1 tolerance would hide it)."""
    path = export_onnx(Identity().eval(), tmp_path / "identity.onnx", 30, 44, dynamic=True, io="uint8")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for height, width in ((30, 44), (17, 23)):  # padded inside the graph, cropped back
        frame = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        frame[0, 0, 0] = (0, 255, 128)
        (out,) = session.run(None, {session.get_inputs()[0].name: frame})
        assert out.dtype == np.uint8 and np.array_equal(out, frame)


def test_calibration_takes_exactly_the_frames_asked_for_or_those_there_are(tmp_path):
    """Bug: calibration returns one frame too many (or reads past the folder)."""
    rng = np.random.default_rng(0)
    for index in range(5):
        write_image(tmp_path / f"{index}.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    assert calibration_frames(tmp_path, 3, 32, 32).shape == (3, 32, 32, 3)
    assert calibration_frames(tmp_path, 10, 32, 32).shape == (5, 32, 32, 3)
    assert calibration_frames("synthetic", 4, 32, 32).shape == (4, 32, 32, 3)
