"""cpp_ext: the kernels compile warning-free for the whole GPU table; the NV12 references are right; on a GPU, every
kernel matches its reference (uint8 bit-exact, floats to the last bit or ULP) on odd sizes and pitched frames."""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from derain.cpp_ext import KERNELS, SOURCE, KernelBuildError, build_fatbin
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
    with pytest.raises(KernelBuildError, match="not found"):
        build_fatbin(tmp_path / "none.fatbin", nvcc="no-such-nvcc")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA toolkit) is not on this machine")
def test_setup_builds_the_fatbin_at_install_only_when_asked(tmp_path):
    """`DERAIN_BUILD_KERNELS=1 pip install .` ships frame_io-<source hash>.fatbin beside the source, which
    FrameKernels loads before compiling with NVRTC; a plain install compiles nothing."""
    from derain.cpp_ext.device import source_hash

    root = Path(__file__).parent.parent
    name = f"frame_io-{source_hash()}.fatbin"
    for wanted in ("1", "0"):
        out = tmp_path / wanted
        environment = {**os.environ, "DERAIN_BUILD_KERNELS": wanted}
        done = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(out)], cwd=root,
                              env=environment, capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        kernels = out / "derain" / "cpp_ext" / "kernels"
        assert (kernels / "frame_io.cu").is_file()
        assert (kernels / name).is_file() == (wanted == "1")
    assert all(kernel.encode() in (tmp_path / "1" / "derain" / "cpp_ext" / "kernels" / name).read_bytes()
               for kernel in KERNELS)  # fmt: skip


def cubin_capability(cubin: bytes) -> int:
    """The SM a cubin holds code for: byte 1 of the ELF header's e_flags (CUDA's EF_CUDA_SM field)."""
    assert cubin[:4] == b"\x7fELF"
    return (struct.unpack_from("<I", cubin, 48)[0] >> 8) & 0xFF


def _nvrtc_missing() -> str | None:
    try:
        from derain.cpp_ext.device import nvrtc_version

        nvrtc_version()
    except KernelBuildError as error:
        return str(error)
    return None


needs_nvrtc = pytest.mark.skipif(_nvrtc_missing() is not None, reason=f"no NVRTC here: {_nvrtc_missing()}")


@needs_nvrtc
def test_nvrtc_compiles_the_kernels_for_every_target_without_a_gpu():
    """The first-use path, on a CPU-only machine: one cubin per compute capability of the table (Orin's 87 and
    Hopper's 90 included), each holding every kernel, for that SM; any warning would have failed it."""
    from derain.cpp_ext.device import compile_cubin

    for capability in TARGETS:
        cubin = compile_cubin(capability)
        assert cubin_capability(cubin) == capability
        assert all(name.encode() in cubin for name in KERNELS), capability
    space = b" "  # the interpreter's shared one-byte object: NVRTC must write into buffers of our own, not into it
    assert space[0] == 32


@needs_nvrtc
def test_nvrtc_refuses_a_source_that_warns():
    from derain.cpp_ext.device import compile_cubin

    with pytest.raises(KernelBuildError, match="declared but never referenced"):
        compile_cubin(86, b'extern "C" __global__ void k(int* a) { int unused; a[0] = 1; }')


@needs_nvrtc
def test_the_cubin_cache_is_keyed_by_source_and_target_and_heals(tmp_path, caplog):
    from derain.cpp_ext.device import cached_cubin

    data, path = cached_cubin(86, tmp_path)
    stamp = path.stat().st_mtime_ns
    again, same = cached_cubin(86, tmp_path)
    assert same == path and again == data and path.stat().st_mtime_ns == stamp  # read, not compiled again
    other = SOURCE.read_bytes() + b"\n// another revision\n"
    assert cached_cubin(86, tmp_path, source=other)[1] != path  # a new source never reads an old cubin
    assert cached_cubin(89, tmp_path)[1] != path
    path.write_bytes(b"half a file")
    with caplog.at_level("WARNING", logger="derain.cpp_ext.device"):
        healed, _ = cached_cubin(86, tmp_path)
    assert "not a cubin" in caplog.text and healed == data and path.read_bytes() == data


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
    import torch

    from derain.cpp_ext.device import FrameKernels

    return FrameKernels(torch.cuda.current_device())


def poisoned(shape: tuple[int, ...], dtype: Any) -> Any:
    """An output buffer full of a value no kernel writes (NaN, or 0xAB bytes), so an element left unwritten shows."""
    import torch

    if dtype.is_floating_point:
        return torch.full(shape, float("nan"), dtype=dtype, device="cuda")
    return torch.full(shape, 0xAB, dtype=dtype, device="cuda")


def cuda(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).cuda()


SIZES = [(1, 1), (7, 13), (33, 65), (1080, 1920), (2160, 3840)]


@pytest.mark.gpu
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("half", [False, True])
def test_bgr8_to_network_matches_the_contract(kernels, size, half):
    import torch

    rng = np.random.default_rng(size[0])
    frames = rng.integers(0, 256, (2, *size, 3), dtype=np.uint8)
    padded = np.zeros((2, size[0], size[1] + 5, 3), np.uint8)  # pitched rows: 5 spare pixels a row
    padded[:, :, : size[1]] = frames
    expected = to_network(frames, 8, np.float16 if half else np.float32)
    out = poisoned(expected.shape, torch.float16 if half else torch.float32)
    kernels.to_network(cuda(padded)[:, :, : size[1]], out)
    got = out.cpu().numpy()
    assert got.dtype == expected.dtype and np.array_equal(got, expected)


@pytest.mark.gpu
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("half", [False, True])
def test_network_to_bgr8_matches_the_contract(kernels, size, half):
    import torch

    rng = np.random.default_rng(size[1])
    tensor = rng.uniform(-0.2, 1.2, (2, 3, size[0] + 3, size[1] + 5)).astype(np.float16 if half else np.float32)
    tensor[0, 0, 0, 0] = 0.5 / 255  # a tie: rounds half to even (to 0)
    pitched = poisoned((2, size[0], size[1] + 7, 3), torch.uint8)  # rows of an output frame may be pitched too
    kernels.from_network(cuda(tensor), pitched[:, :, : size[1]])
    got = pitched.cpu().numpy()
    assert np.array_equal(got[:, :, : size[1]], from_network(tensor, *size))
    assert (got[:, :, size[1] :] == 0xAB).all()  # nothing written past the row


@pytest.mark.gpu
@pytest.mark.parametrize(("matrix", "full_range"), [(601, False), (601, True), (709, False), (709, True)])
def test_nv12_kernels_match_the_reference(kernels, matrix, full_range):
    import torch

    rng = np.random.default_rng(2)
    luma = rng.integers(0, 256, (2, 1080, 1920), dtype=np.uint8)
    chroma = rng.integers(0, 256, (2, 540, 960, 2), dtype=np.uint8)
    expected = nv12_to_network(luma, chroma, matrix, full_range, multiple=8)
    out = poisoned(expected.shape, torch.float32)
    kernels.nv12_to_network(cuda(luma), cuda(chroma), out, matrix, full_range)
    assert np.abs(out.cpu().numpy() - expected).max() <= 2e-6  # FMA contraction on the GPU: the last bit or two
    tensor = rng.uniform(0, 1, (2, 3, 1080, 1920)).astype(np.float32)
    y, uv = poisoned((2, 1080, 1920), torch.uint8), poisoned((2, 540, 960, 2), torch.uint8)
    kernels.network_to_nv12(cuda(tensor), y, uv, matrix, full_range)
    ref_y, ref_uv = network_to_nv12(tensor, 1080, 1920, matrix, full_range)
    for got, ref in ((y.cpu().numpy(), ref_y), (uv.cpu().numpy(), ref_uv)):
        assert np.abs(got.astype(int) - ref).max() <= 1 and np.mean(got != ref) < 1e-4


@pytest.mark.gpu
def test_tiles_blend_as_the_contract_does(kernels):
    import torch

    frame = np.random.default_rng(3).integers(0, 256, (203, 311, 3), dtype=np.uint8)
    dtypes = {"uint8": torch.uint8, "float32": torch.float32}
    out = poisoned(frame.shape, torch.uint8)

    def empty(shape, dtype):
        return torch.empty(shape, dtype=dtypes[dtype], device="cuda")

    kernels.tiled(lambda tile: 255 - tile, cuda(frame), out, (96, 128), 16, empty, multiple=8)
    assert np.array_equal(out.cpu().numpy(), tiled(lambda b: 255 - b, frame, (96, 128), 16, multiple=8))

    def numbered(offset):  # each tile a different constant: the blend weights decide every overlapping pixel
        calls = []

        def run(tile):
            calls.append(len(calls))
            return tile * 0 + (offset + 37 * len(calls)) % 256
        return run

    kernels.tiled(numbered(0), cuda(frame), out, (96, 128), 16, empty, multiple=8)
    assert np.array_equal(out.cpu().numpy(), tiled(numbered(0), frame, (96, 128), 16, multiple=8))


@pytest.mark.gpu
@pytest.mark.parametrize("half", [False, True])
def test_frames_pad_into_a_larger_static_shape_as_the_contract_does(kernels, half):
    import torch

    frames = np.random.default_rng(4).integers(0, 256, (2, 37, 45, 3), dtype=np.uint8)
    dtype = np.float16 if half else np.float32
    expected = to_network(frames, 8, dtype, size=(128, 160))  # edge to 40 x 48, then repeated
    out = poisoned(expected.shape, torch.float16 if half else torch.float32)
    kernels.to_network(cuda(frames), out, multiple=8)
    assert np.array_equal(out.cpu().numpy(), expected)
    luma = np.random.default_rng(5).integers(0, 256, (1, 38, 46), dtype=np.uint8)
    chroma = np.random.default_rng(6).integers(0, 256, (1, 19, 23, 2), dtype=np.uint8)
    expected = nv12_to_network(luma, chroma, 601, False, multiple=8, size=(128, 160))
    out = poisoned(expected.shape, torch.float32)
    kernels.nv12_to_network(cuda(luma), cuda(chroma), out, 601, False, multiple=8)
    assert np.abs(out.cpu().numpy() - expected).max() <= 2e-6


@pytest.mark.gpu
def test_kernels_launch_on_the_stream_given_and_inside_a_cuda_graph(kernels):
    """A launch on a side stream is ordered after that stream's work; a CUDA graph captured around a launch
    replays it on new pixels copied into its input."""
    import torch

    first, second = (np.random.default_rng(seed).integers(0, 256, (1, 61, 97, 3), np.uint8) for seed in (4, 5))
    source = cuda(first)
    out = poisoned((1, 3, 64, 104), torch.float32)
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        kernels.to_network(source, out, side.cuda_stream)
    side.synchronize()
    assert np.array_equal(out.cpu().numpy(), to_network(first, 8))
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        kernels.to_network(source, out, torch.cuda.current_stream().cuda_stream)
    source.copy_(cuda(second))
    graph.replay()
    torch.cuda.synchronize()
    assert np.array_equal(out.cpu().numpy(), to_network(second, 8))


@pytest.mark.gpu
def test_a_cached_cubin_that_the_driver_refuses_is_compiled_again(tmp_path, caplog):
    from derain.cpp_ext.device import FrameKernels, cubin_path

    capability = kernels_capability()
    path = cubin_path(capability, tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF" + b"\0" * 64)  # an ELF header and nothing the driver can load
    with caplog.at_level("WARNING", logger="derain.cpp_ext.device"):
        loaded = FrameKernels(directory=tmp_path, prebuilt=False)
    assert "compiling it again" in caplog.text and str(path) in loaded.image
    assert cubin_capability(path.read_bytes()) == capability


def kernels_capability() -> int:
    import torch

    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


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
