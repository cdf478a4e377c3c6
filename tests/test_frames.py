"""The frame contract (`derain.frames`): the numpy reference, and every backend against it (PyTorch, ONNX Runtime
with uint8 frame graphs and with float graphs), at 1080x1920 and at sizes off every network's multiple."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain import frames
from derain.export.onnx_export import export_onnx
from derain.models import build_model, pad_multiple, prediction, save_checkpoint
from derain.runtime import Derainer, FrameError, open_backend

pytest.importorskip("onnxruntime", reason="the [dev] extra installs onnxruntime")

SIZES = [(1080, 1920), (37, 45), (8, 8), (33, 8)]


def perturbed(name: str, seed: int) -> torch.nn.Module:
    """A tiny network whose output is far from its input (random weights, scaled up)."""
    torch.manual_seed(seed)
    model = build_model(name, **TINY_NETWORKS[name]).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def artifacts(model: torch.nn.Module, folder) -> dict[str, object]:
    """The network as a checkpoint, a uint8 frame graph and a float graph."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"pad_multiple": pad_multiple(model)}
    return {
        "pytorch": save_checkpoint(folder / "net.pt", model),
        "onnx uint8": export_onnx(model, folder / "u8.onnx", 32, 32, io="uint8", metadata={**meta, "io": "uint8"}),
        "onnx float": export_onnx(model, folder / "f.onnx", 32, 32, io="float", metadata={**meta, "io": "float"}),
    }


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    """The realtime network with a zero tail: it returns its input exactly."""
    model = build_model("realtime", **TINY_NETWORKS["realtime"], tail_scale=0.0).eval()
    return artifacts(model, tmp_path_factory.mktemp("identity"))


@pytest.fixture(scope="module", params=["realtime", "nafnet"])
def network(request, tmp_path_factory):
    model = perturbed(request.param, seed=3)
    return model, artifacts(model, tmp_path_factory.mktemp(request.param))


def camera_frame(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus noise, so borders and channel order matter."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = np.stack([rows * 255 / max(height - 1, 1), cols * 255 / max(width - 1, 1), (rows + cols) % 256], -1)
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)


def test_numpy_reference_pads_by_edge_scales_by_255_and_rounds_half_to_even():
    frame = camera_frame(13, 11)
    tensor = frames.to_network(frame, multiple=8)
    assert tensor.shape == (1, 3, 16, 16) and tensor.dtype == np.float32
    for row in range(13, 16):  # bottom rows repeat the last row, right columns the last column
        assert np.array_equal(tensor[0, :, row, :11], tensor[0, :, 12, :11])
    assert np.array_equal(tensor[0, :, :13, 15], tensor[0, :, :13, 10])
    assert np.array_equal(tensor[0, 0, :13, :11] * 255, frame[..., 2].astype(np.float32))  # R first (BGR in)
    assert np.array_equal(frames.from_network(tensor, 13, 11)[0], frame)  # the round trip is exact
    halves = np.array([0.5, 1.5, 2.5, 254.5], np.float32) / 255
    out = frames.from_network(np.broadcast_to(halves, (1, 3, 1, 4)), 1, 4)
    assert out[0, 0, :, 0].tolist() == [0, 2, 2, 254]  # half to even, not half up


@pytest.mark.parametrize("size", [(1080, 1920), (37, 45)])
def test_identity_network_returns_the_frame_bit_exactly_through_every_backend(identity, size):
    frame = camera_frame(*size, seed=1)
    for kind, path in identity.items():
        with open_backend(path, device="cpu") as backend:
            out = backend(frame)
        assert out.dtype == np.uint8 and out.shape == frame.shape, kind
        assert np.array_equal(out, frame), f"{kind}: {np.count_nonzero(out != frame)} pixels changed"


@pytest.mark.parametrize("size", SIZES)
def test_every_backend_agrees_with_the_numpy_reference_to_one_grey_level(network, size):
    model, paths = network
    if size == (1080, 1920) and model.spec["name"] != "realtime":
        size = (540, 960)  # the same code path as full HD for the shipped network; a quarter of the time for NAFNet

    def run_network(tensor: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return prediction(model(torch.from_numpy(tensor))).numpy()

    frame = camera_frame(*size, seed=2)
    expected = frames.reference(run_network, frame, pad_multiple(model))
    assert np.abs(expected.astype(int) - frame).mean() > 2  # the network changes the frame
    for kind, path in paths.items():
        with open_backend(path, device="cpu") as backend:
            out = backend(frame)
        difference = np.abs(out.astype(int) - expected)
        assert out.shape == frame.shape, kind
        assert difference.max() <= 1, f"{kind}: max difference {difference.max()}"
        assert np.mean(difference > 0) < 0.01, f"{kind}: {np.mean(difference > 0):.2%} of values differ"


def test_static_graph_pads_small_frames_and_tiles_large_ones(identity, network, tmp_path):
    model, _ = network
    static = export_onnx(model, tmp_path / "static.onnx", 64, 96, dynamic=False, io="uint8",
                         metadata={"io": "uint8", "pad_multiple": pad_multiple(model)})  # fmt: skip
    derainer = Derainer(static, device="cpu", tile_context=16)
    assert derainer.spec.fixed_sizes == ((64, 96),)
    small, large = camera_frame(40, 50, seed=4), camera_frame(150, 230, seed=5)
    assert derainer(small).shape == small.shape
    tiled = derainer(large)
    assert tiled.shape == large.shape

    def run_network(tensor: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return prediction(model(torch.from_numpy(tensor))).numpy()

    whole = frames.reference(run_network, large, pad_multiple(model))
    mse = np.mean((tiled.astype(np.float64) - whole) ** 2)
    assert 10 * np.log10(255**2 / max(mse, 1e-12)) > 35  # blended tiles are close to the whole-frame result
    # a small frame goes into the static graph padded as the contract pads: edge to the multiple, then repeated
    padded = frames.pad_frames(small[None], 64, 96, pad_multiple(model))
    expected = frames.from_network(run_network(frames.to_network(padded)), 40, 50)[0]
    assert np.abs(derainer(small).astype(int) - expected).max() <= 1

    identity_static = export_onnx(build_model("realtime", **TINY_NETWORKS["realtime"], tail_scale=0.0).eval(),
                                  tmp_path / "id.onnx", 64, 96, dynamic=False, io="uint8",
                                  metadata={"io": "uint8", "pad_multiple": 8})  # fmt: skip
    assert np.array_equal(Derainer(identity_static, device="cpu")(large), large)  # blending changes no pixel


def test_tiles_with_the_networks_context_give_its_own_result(tmp_path):
    """A network of finite receptive field, tiled through a static graph that records its context, gives the
    whole frame's pixels; without the context it does not."""
    model = perturbed("realtime", seed=5)
    # receptive-field radius of the tiny realtime net, counted: head 2 + encoder 4 + 8 + bottleneck 16 + decoder
    # 8 + 4 + tail 2 = 44 pixels, plus the pixel-unshuffle cells: 48 is beyond it
    static = export_onnx(model, tmp_path / "static.onnx", 224, 256, dynamic=False, io="uint8",
                         metadata={"io": "uint8", "pad_multiple": 8, "context": 48})  # fmt: skip
    derainer = Derainer(static, device="cpu")
    assert derainer.spec.context == 48 and derainer.context() == 48
    large = camera_frame(400, 520, seed=6)

    def run_network(tensor: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return prediction(model(torch.from_numpy(tensor))).numpy()

    whole = frames.reference(run_network, large, 8)
    difference = np.abs(derainer(large).astype(int) - whole)
    assert difference.max() <= 1 and np.mean(difference > 0) < 1e-4, (difference.max(), np.mean(difference > 0))
    narrow = np.abs(Derainer(static, device="cpu", tile_context=0)(large).astype(int) - whole)
    assert narrow.max() > 2 and np.mean(narrow > 0) > 0.005  # the context matters: without it the seams show
    small_tiles = Derainer(export_onnx(model, tmp_path / "small.onnx", 96, 96, dynamic=False, io="uint8",
                                       metadata={"io": "uint8", "pad_multiple": 8, "context": 48}), device="cpu")
    assert small_tiles.context((96, 96)) == 16  # small tiles: the stride stays at half a tile, not thousands


def test_tile_weights_are_zero_where_a_tile_saw_its_border_and_ramp_after():
    # a tile at 64 of a 300-pixel side, 100 long, context 10, blend 16: both ends are shared with neighbours
    weights = frames.tile_weights(64, 100, 300, context=10, blend=16)
    assert np.all(weights[:10] == 0) and np.all(weights[-10:] == 0)
    ramp = (np.arange(1, 17) / 17).astype(np.float32)  # 1/17 .. 16/17 over the blend, then 1
    assert np.allclose(weights[10:26], ramp) and np.allclose(weights[-26:-10], ramp[::-1])
    assert np.all(weights[26:-26] == 1)
    assert np.all(frames.tile_weights(0, 100, 100, context=10) == 1)  # the frame's own edges keep full weight
    first = frames.tile_weights(0, 100, 300, context=10, blend=16)
    assert np.all(first[:74] == 1) and np.all(first[-10:] == 0)


def test_tile_origins_keep_the_multiple_and_end_flush_with_the_frame():
    for size, tile, context in [(1080, 480, 88), (1920, 640, 88), (2160, 480, 88), (500, 128, 48), (130, 128, 8)]:
        starts = frames.tile_origins(size, tile, context, multiple=8)
        assert all(start % 8 == 0 for start in starts)
        assert starts[-1] + tile == frames.padded_size(size, size, 8)[0]  # padded as the whole frame is
        shared = [starts[i] + tile - starts[i + 1] for i in range(len(starts) - 1)]
        assert min(shared) >= 2 * context + frames.BLEND
    assert frames.tile_origins(100, 128, 48, multiple=8) == [0]
    with pytest.raises(ValueError, match="context"):
        frames.tile_origins(1000, 128, 60, multiple=8)


def test_padding_into_a_larger_shape_repeats_the_frame_padded_to_its_multiple():
    frame = camera_frame(13, 11)
    padded = frames.pad_frames(frame[None], 40, 30, multiple=8)[0]
    assert np.array_equal(padded[:13, :11], frame)
    assert np.array_equal(padded[13:16, :11], np.repeat(frame[12:13], 3, axis=0))  # edge to the multiple (16)
    assert np.array_equal(padded[16:29, :11], frame)  # then the 16-row period again
    assert np.array_equal(padded[:, 16:27], padded[:, :11])
    tensor = frames.to_network(frame, multiple=8, size=(40, 30))
    assert np.array_equal(tensor[0, 0] * 255, padded[..., 2].astype(np.float32))


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((1, 1, 3), np.uint8), "outside the 8"),
        (np.zeros((32, 32), np.uint8), "COLOR_GRAY2BGR"),
        (np.zeros((32, 32, 4), np.uint8), "COLOR_BGRA2BGR"),
        (np.zeros((32, 32, 3), np.uint16), "uint8"),
        (np.zeros((32, 32, 3), np.float32), "uint8"),
        (None, "no frame"),
    ],
)
def test_frames_off_the_contract_get_a_clear_error(identity, frame, message):
    derainer = Derainer(identity["onnx uint8"], device="cpu")
    with pytest.raises(FrameError, match=message):
        derainer(frame)
