"""cpp_ext: the kernels compile warning-free for the whole GPU table; the NV12 references are right; on a GPU, every
kernel matches its reference (uint8 bit-exact, floats to the last bit or ULP) on odd sizes and pitched frames."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from derain.cpp_ext import KERNELS, build_fatbin
from derain.cpp_ext.reference import network_to_nv12, nv12_to_network
from derain.frames import from_network, tiled, to_network
from derain.gpus import TARGETS


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) is not on this machine")
def test_kernels_compile_warning_free_for_every_target_in_the_table(tmp_path):
    """sm_75 .. sm_121, Orin (87) and Hopper (90) included, with warnings as errors."""
    fatbin = build_fatbin(tmp_path / "frame_io.fatbin")
    data = fatbin.read_bytes()
    assert all(name.encode() in data for name in KERNELS)
    for capability in TARGETS:
        assert f"sm_{capability}".encode() in data or capability == max(TARGETS), capability


def test_nv12_reference_decodes_as_opencv_does():
    """BT.601 limited range is what OpenCV's NV12 decoder implements (in fixed point: within 2 levels)."""
    rng = np.random.default_rng(0)
    height, width = 36, 50
    luma = rng.integers(16, 236, (height, width), dtype=np.uint8)
    chroma = rng.integers(16, 241, (height // 2, width // 2, 2), dtype=np.uint8)
    packed = np.concatenate([luma, chroma.reshape(height // 2, width)], axis=0)
    opencv = cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_NV12).astype(int)
    ours = nv12_to_network(luma[None], chroma[None], 601, full_range=False)[0].transpose(1, 2, 0)
    assert np.abs(np.rint(ours * 255).astype(int) - opencv).max() <= 2


@pytest.mark.parametrize(("matrix", "full_range"), [(601, False), (601, True), (709, False), (709, True)])
def test_nv12_round_trip(matrix, full_range):
    """Colours constant over each 2x2 block (nothing lost to 4:2:0) come back within the codes' quantization."""
    rng = np.random.default_rng(1)
    blocks = rng.uniform(0.1, 0.9, (1, 3, 12, 16)).astype(np.float32)
    rgb = blocks.repeat(2, axis=2).repeat(2, axis=3)
    luma, chroma = network_to_nv12(rgb, 24, 32, matrix, full_range)
    back = nv12_to_network(luma, chroma, matrix, full_range)
    assert np.abs(back - rgb).max() < (3.5 if full_range else 4.5) / 255


def test_bt709_and_bt601_differ_on_saturated_colour():
    red = np.zeros((1, 3, 2, 2), np.float32)
    red[:, 0] = 1.0
    assert network_to_nv12(red, 2, 2, 601)[0][0, 0, 0] != network_to_nv12(red, 2, 2, 709)[0][0, 0, 0]


# ------------------------------------------------------------------------------------------------ on a GPU


@pytest.fixture(scope="module")
def kernels():
    cupy = pytest.importorskip("cupy", reason="cupy is not installed (the GPU image has it)")
    from derain.cpp_ext.device import FrameKernels

    return FrameKernels(), cupy


def _poison(cupy, nbytes: int) -> None:
    """Leave poisoned blocks in cupy's pool, so an output element a kernel never writes shows up."""
    cupy.full(nbytes * 4, 0xAB, cupy.uint8)


SIZES = [(1, 1), (7, 13), (33, 65), (1080, 1920), (2160, 3840)]


@pytest.mark.gpu
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("half", [False, True])
def test_bgr8_to_network_matches_the_contract(kernels, size, half):
    kernel, cp = kernels
    rng = np.random.default_rng(size[0])
    frames = rng.integers(0, 256, (2, *size, 3), dtype=np.uint8)
    padded = np.zeros((2, size[0], size[1] + 5, 3), np.uint8)  # pitched rows: 5 spare pixels a row
    padded[:, :, : size[1]] = frames
    _poison(cp, frames.size * 8)
    out = kernel.to_network(cp.asarray(padded)[:, :, : size[1]], multiple=8, half=half).get()
    expected = to_network(frames, 8, np.float16 if half else np.float32)
    assert out.dtype == expected.dtype and np.array_equal(out, expected)


@pytest.mark.gpu
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("half", [False, True])
def test_network_to_bgr8_matches_the_contract(kernels, size, half):
    kernel, cp = kernels
    rng = np.random.default_rng(size[1])
    tensor = rng.uniform(-0.2, 1.2, (2, 3, size[0] + 3, size[1] + 5)).astype(np.float16 if half else np.float32)
    tensor[0, 0, 0, 0] = 0.5 / 255  # a tie: rounds half to even (to 0)
    _poison(cp, tensor.size * 4)
    out = kernel.from_network(cp.asarray(tensor), *size).get()
    assert np.array_equal(out, from_network(tensor, *size))


@pytest.mark.gpu
@pytest.mark.parametrize(("matrix", "full_range"), [(601, False), (709, True)])
def test_nv12_kernels_match_the_reference(kernels, matrix, full_range):
    kernel, cp = kernels
    rng = np.random.default_rng(2)
    luma = rng.integers(0, 256, (2, 1080, 1920), dtype=np.uint8)
    chroma = rng.integers(0, 256, (2, 540, 960, 2), dtype=np.uint8)
    out = kernel.nv12_to_network(cp.asarray(luma), cp.asarray(chroma), matrix, full_range, multiple=8).get()
    expected = nv12_to_network(luma, chroma, matrix, full_range, multiple=8)
    assert np.abs(out - expected).max() <= 2e-6  # FMA contraction on the GPU: the last bit or two
    tensor = rng.uniform(0, 1, (2, 3, 1080, 1920)).astype(np.float32)
    y, uv = kernel.network_to_nv12(cp.asarray(tensor), 1080, 1920, matrix, full_range)
    ref_y, ref_uv = network_to_nv12(tensor, 1080, 1920, matrix, full_range)
    assert np.abs(y.get().astype(int) - ref_y).max() <= 1 and np.mean(y.get() != ref_y) < 1e-4
    assert np.abs(uv.get().astype(int) - ref_uv).max() <= 1 and np.mean(uv.get() != ref_uv) < 1e-4


@pytest.mark.gpu
def test_tiles_blend_as_the_contract_does(kernels):
    kernel, cp = kernels
    frame = np.random.default_rng(3).integers(0, 256, (203, 311, 3), dtype=np.uint8)

    def invert(batch):
        return 255 - batch

    out = kernel.tiled(invert, cp.asarray(frame), (96, 128), 16, multiple=8).get()
    assert np.array_equal(out, tiled(lambda b: 255 - b, frame, (96, 128), 16, multiple=8))


def test_a_frame_plugin_builds_into_an_rtx_engine_on_a_cpu_only_machine(tmp_path):
    """The plugin question, answered on every CI run: TensorRT-RTX builds an engine holding our IPluginV3 ahead of
    time without a GPU when the plugin takes floats; with the camera's uint8 frame the builder refuses it (the
    exact error is recorded in benchmarks/results/plugin_probe.md)."""
    pytest.importorskip("tensorrt_rtx")
    script = Path(__file__).parent.parent / "benchmarks" / "plugin_probe.py"
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    outcomes = json.loads((tmp_path / "runs" / "benchmarks" / "plugin_probe.json").read_text())
    assert outcomes["float"]["built"] and outcomes["float"]["bytes"] > 0
    assert any(call.startswith("create_plugin") for call in outcomes["float"]["phases"])
