"""The runtime's GPU paths: the PyTorch CUDA backend (FP32/FP16, channels_last, CUDA graphs, device frames) and,
where a GPU of an engine's targets is present, the TensorRT backend.

Marked `gpu`: skipped without CUDA (CI), run on a GPU machine with `pytest -m gpu tests/test_runtime_gpu.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain import frames
from derain.models import build_model, prediction, save_checkpoint
from derain.runtime import Derainer

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("realtime", **TINY_NETWORKS["realtime"], tail_scale=1.0).eval()
    return model, save_checkpoint(tmp_path_factory.mktemp("gpu") / "net.pt", model)


def frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("size", [(1080, 1920), (37, 45)])
def test_pytorch_cuda_fp32_with_and_without_graphs_matches_the_reference(checkpoint, size):
    model, path = checkpoint
    torch.backends.cudnn.allow_tf32 = False

    def run_network(tensor: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return prediction(model(torch.from_numpy(tensor))).numpy()

    image = frame(*size)
    expected = frames.reference(run_network, image, 8)
    for options in ({"cuda_graphs": False, "channels_last": False}, {"cuda_graphs": True, "channels_last": True}):
        with Derainer(path, device="cuda", **options) as derainer:
            first, again = derainer(image), derainer(image)  # the second call replays the captured graph
        assert np.array_equal(first, again)
        assert np.abs(first.astype(int) - expected).max() <= 1, options


def test_pytorch_cuda_fp16_stays_close_and_device_frames_stay_on_the_device(checkpoint):
    _, path = checkpoint
    image = frame(720, 1280, seed=1)
    reference = Derainer(path, device="cpu")(image)
    with Derainer(path, device="cuda", precision="fp16") as derainer:
        host = derainer(image)
        device = derainer(torch.from_numpy(image).cuda())
    assert isinstance(device, torch.Tensor) and device.is_cuda and device.dtype == torch.uint8
    assert np.array_equal(device.cpu().numpy(), host)
    mse = np.mean((host.astype(np.float64) - reference) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 40  # FP16 against FP32


def test_a_cuda_graph_per_shape_and_clones_own_their_graphs(checkpoint):
    _, path = checkpoint
    derainer = Derainer(path, device="cuda")
    small, large = frame(64, 96), frame(128, 160)
    outputs = [derainer(small), derainer(large), derainer(small)]
    assert sorted(derainer.backend.graphs) == [(1, 64, 96, 3), (1, 128, 160, 3)]
    assert np.array_equal(outputs[0], outputs[2])
    clone = derainer.clone()
    assert clone.backend.graphs == {} and np.array_equal(clone(small), outputs[0])


@pytest.mark.trt
def test_tensorrt_engine_agrees_with_onnxruntime_on_a_gpu_of_its_targets(checkpoint, tmp_path):
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed")
    from derain.export.pipeline import export
    from derain.gpus import RTX_SUPPORTED

    major, minor = torch.cuda.get_device_capability(0)
    if major * 10 + minor not in RTX_SUPPORTED:
        pytest.skip(f"TensorRT-RTX does not run on SM{major}{minor}")
    _, path = checkpoint
    result = export(weights=str(path), out=str(tmp_path), precision="fp32", shapes=((64, 96),),
                    targets=((major * 10 + minor,),), test_count=2)  # fmt: skip
    card = result.engines[0]
    assert "psnr_rgb_fp32" in json.loads(Path(card["card"]).read_text())["parity"]["engine"]  # measured at export
    with Derainer(card["engine"]) as engine, Derainer(result.onnx["fp32"], device="cpu") as reference:
        for size in [(64, 96), (40, 50), (150, 230)]:  # exact, padded up, tiled
            image = frame(*size, seed=3)
            got, expected = engine(image), reference(image)
            mse = np.mean((got.astype(np.float64) - expected) ** 2)
            assert got.shape == image.shape and 10 * np.log10(255**2 / max(mse, 1e-12)) > 40, size
        device = torch.from_numpy(frame(64, 96, seed=4)).cuda()
        out = torch.as_tensor(engine(device), device="cuda")
        assert torch.equal(out.cpu(), torch.from_numpy(engine(device.cpu().numpy())))


@pytest.mark.trt
def test_a_float_engine_gives_the_same_pixels_with_the_fused_kernels_as_on_the_host(checkpoint, tmp_path):
    """Around a float-I/O engine the fused kernels replace the host NumPy conversions: same pixels from host and
    from (pitched) device frames; the check at load passed, so the kernels stayed on."""
    pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed")
    from derain.export.pipeline import export
    from derain.gpus import RTX_SUPPORTED
    from derain.runtime.backends.tensorrt_engine import TensorRTBackend

    major, minor = torch.cuda.get_device_capability(0)
    if major * 10 + minor not in RTX_SUPPORTED:
        pytest.skip(f"TensorRT-RTX does not run on SM{major}{minor}")
    _, path = checkpoint
    result = export(weights=str(path), out=str(tmp_path), precision="fp16", io="float", shapes=((64, 96),),
                    targets=((major * 10 + minor,),), test_count=2)  # fmt: skip
    engine_path = result.engines[0]["engine"]
    with TensorRTBackend.load(engine_path, kernels="on") as fused, TensorRTBackend.load(engine_path, kernels="off") \
            as host:  # fmt: skip
        assert fused.describe()["pixel_path"].startswith("fused") and host.describe()["pixel_path"] == "host NumPy"
        for size in [(64, 96), (57, 90)]:  # exact, padded up by the kernel
            image = frame(*size, seed=5)
            assert np.array_equal(fused.run(image), host.run(image)), size
        pitched = torch.from_numpy(frame(64, 100, seed=6)).cuda()[:, :96]
        out = torch.as_tensor(fused.run(pitched), device="cuda")
        assert torch.equal(out.cpu(), torch.from_numpy(host.run(pitched.cpu().numpy())))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("size", [(1080, 1920), (37, 45)])
def test_fused_kernels_give_the_pixels_of_the_torch_ops(checkpoint, precision, size):
    """The pixel path through `derain.cpp_ext` (one kernel in, one out, the network's CUDA graph between) returns
    the same uint8 frames as FrameIO's torch ops, from host and device frames alike, with and without the CUDA
    graph that holds kernels and network together."""
    _, path = checkpoint
    torch.backends.cudnn.allow_tf32 = False
    image = frame(*size, seed=2)
    outputs = {}
    for kernels, graphs in (("on", True), ("on", False), ("off", True)):
        with Derainer(path, device="cuda", precision=precision, kernels=kernels, cuda_graphs=graphs) as derainer:
            assert derainer.backend.describe()["pixel_path"].startswith("fused" if kernels == "on" else "torch")
            host, again = derainer(image), derainer(image)
            device = derainer(torch.from_numpy(image).cuda())
        assert np.array_equal(host, again) and np.array_equal(device.cpu().numpy(), host)
        outputs[kernels, graphs] = host
    assert np.array_equal(outputs["on", True], outputs["off", True])
    assert np.array_equal(outputs["on", False], outputs["off", True])
