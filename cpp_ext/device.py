"""Launch the pixel-path kernels on a GPU through cuda-python (driver API + NVRTC): no torch, no cupy, no toolkit.

The module image, the first that loads:
1. `frame_io-<source hash>.fatbin` beside the source, built at install when asked (`DERAIN_BUILD_KERNELS=1 pip
   install .`: nvcc, SASS for the whole GPU table and PTX for the newest; one of another source is ignored);
2. a cubin NVRTC compiles for this GPU's compute capability at first use, cached on disk by compute capability,
   source hash and NVRTC version (`$DERAIN_KERNEL_CACHE`, default `~/.cache/derain/kernels`). A cache file that is
   not a cubin, or that the driver refuses, is compiled again.
NVRTC comes from the CUDA toolkit / JetPack, or from `pip install nvidia-cuda-nvrtc` (the same CUDA major as the
driver); `cuda-pathfinder` finds either.

Arrays are anything with `__cuda_array_interface__` (torch CUDA tensors, cupy arrays, `DeviceArray` over raw
pointers). The caller allocates every output, so the kernels fit any allocator: torch's caching allocator and its
CUDA graph pools, the TensorRT backend's own buffers. Launches go on the stream handle given (an int, as
`torch.cuda.current_stream().cuda_stream`; 0 is the legacy default stream), so a CUDA graph captured on that
stream holds them. Nothing here synchronizes or copies to the host.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from derain import cuda_python
from derain.cpp_ext import KERNELS, SOURCE, KernelBuildError, aot

log = logging.getLogger(__name__)
BLOCK = (32, 8, 1)
ELF_MAGIC = b"\x7fELF"
TYPESTRS = {"|u1": 1, "<f2": 2, "<f4": 4}


# ----------------------------------------------------------------------------------------------- NVRTC and cache


def _nvrtc() -> Any:
    return cuda_python.nvrtc(KernelBuildError)


def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the NVRTC library cuda-python finds; KernelBuildError when there is none."""
    try:
        error, major, minor = _nvrtc().nvrtcVersion()
    except Exception as error:  # cuda-pathfinder raises its own "not found" errors
        raise KernelBuildError(f"NVRTC is not loadable ({error}): install the CUDA toolkit or "
                               "`pip install nvidia-cuda-nvrtc` for your driver's CUDA major") from None  # fmt: skip
    return int(major), int(minor)


def source_hash(source: bytes | None = None) -> str:
    return aot.source_hash(SOURCE.read_bytes() if source is None else source)


def compile_cubin(capability: int, source: bytes | None = None) -> bytes:
    """NVRTC: `frame_io.cu` -> a cubin (SASS) for `sm_<capability>`. Needs no GPU; warnings are errors."""
    nvrtc = _nvrtc()
    nvrtc_version()  # a clear error when the library is missing
    source = SOURCE.read_bytes() if source is None else source

    def check(result: Any, what: str, program: Any = None) -> Any:
        try:
            return cuda_python.check(result, f"NVRTC {what} failed for sm_{capability}", KernelBuildError)
        except KernelBuildError as error:
            detail = _program_log(nvrtc, program) if program is not None else ""
            raise KernelBuildError(f"{error}\n{detail}".rstrip()) from None

    program = check(nvrtc.nvrtcCreateProgram(source, SOURCE.name.encode(), 0, [], []), "create")
    try:
        options = [b"-std=c++17", f"--gpu-architecture=sm_{capability}".encode(), b"-default-device"]
        check(nvrtc.nvrtcCompileProgram(program, len(options), options), "compile", program)
        warnings = _program_log(nvrtc, program)
        if warnings:  # NVRTC has no -Werror: a compile that says anything fails, as nvcc's build does
            raise KernelBuildError(f"NVRTC warned while compiling for sm_{capability}:\n{warnings}")
        size = check(nvrtc.nvrtcGetCUBINSize(program), "cubin size")
        cubin = bytearray(size)
        check(nvrtc.nvrtcGetCUBIN(program, cubin), "cubin")
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    return bytes(cubin)


def _program_log(nvrtc: Any, program: Any) -> str:
    _, size = nvrtc.nvrtcGetProgramLogSize(program)
    text = bytearray(size)  # never b" " * size: NVRTC writes into it, and b" " * 1 is the interpreter's shared b" "
    nvrtc.nvrtcGetProgramLog(program, text)
    return text.rstrip(b"\x00").decode(errors="replace").strip()


def fatbin_path() -> Path:
    """Where `DERAIN_BUILD_KERNELS=1 pip install .` puts the ahead-of-time build of this very source."""
    return SOURCE.parent / aot.fatbin_name(SOURCE.read_bytes())


def cache_dir() -> Path:
    return Path(os.environ.get("DERAIN_KERNEL_CACHE") or Path.home() / ".cache" / "derain" / "kernels")


def cubin_path(capability: int, directory: Path | None = None, source: bytes | None = None) -> Path:
    major, minor = nvrtc_version()
    name = f"frame_io-{source_hash(source)}-sm_{capability}-nvrtc{major}.{minor}.cubin"
    return (directory or cache_dir()) / name


def cached_cubin(capability: int, directory: Path | None = None, source: bytes | None = None,
                 refresh: bool = False) -> tuple[bytes, Path]:  # fmt: skip
    """The cubin for `capability` from the disk cache, compiled (and written atomically) when absent, not an ELF
    file, or `refresh`; a cache that cannot be written is logged, not fatal. Returns (cubin, its path)."""
    path = cubin_path(capability, directory, source)
    if not refresh and path.is_file():
        data = path.read_bytes()
        if data.startswith(ELF_MAGIC):
            return data, path
        log.warning("cpp_ext: %s is not a cubin; compiling it again", path)
    data = compile_cubin(capability, source)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as error:  # a read-only home in a container: compile at every start rather than fail
        log.warning("cpp_ext: cannot cache the cubin in %s (%s); point DERAIN_KERNEL_CACHE at a writable folder",
                    path.parent, error)  # fmt: skip
    return data, path


# ------------------------------------------------------------------------------------------------------- arrays


@dataclass(frozen=True)
class DeviceArray:
    """A raw device pointer seen as an array (C-contiguous unless `strides`, in bytes, say otherwise)."""

    pointer: int
    shape: tuple[int, ...]
    typestr: str = "|u1"
    strides: tuple[int, ...] | None = None

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": self.typestr, "data": (self.pointer, False), "version": 3,
                "strides": self.strides}  # fmt: skip


@dataclass(frozen=True)
class _View:
    pointer: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # bytes
    typestr: str

    @property
    def itemsize(self) -> int:
        return TYPESTRS[self.typestr]

    def contiguous(self) -> bool:
        return self.strides == _packed(self.shape, self.itemsize)


def _packed(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= size
    return tuple(reversed(strides))


def _view(array: Any, what: str, typestrs: tuple[str, ...], ndim: int) -> _View:
    interface = getattr(array, "__cuda_array_interface__", None)
    if interface is None:
        raise KernelBuildError(f"{what} must be a device array (__cuda_array_interface__), got {type(array).__name__}")
    shape, typestr = tuple(int(s) for s in interface["shape"]), interface["typestr"].replace("=", "<")
    if typestr not in typestrs or len(shape) != ndim:
        raise KernelBuildError(f"{what} must be {ndim}-d {' or '.join(typestrs)}, got {typestr} {shape}")
    itemsize = TYPESTRS[typestr]
    strides = interface.get("strides")
    strides = _packed(shape, itemsize) if strides is None else tuple(int(s) for s in strides)
    return _View(int(interface["data"][0]), shape, strides, typestr)


def _periods(height: int, width: int, out_h: int, out_w: int, multiple: int | None) -> tuple[int, int]:
    """The sides after which the pad repeats (`derain.frames.pad_index`): the frame padded to `multiple`, or the
    whole output (edge replication only) without one."""
    if multiple is None:
        return max(out_h, 1), max(out_w, 1)
    from derain.frames import padded_size

    return padded_size(max(height, 1), max(width, 1), multiple)


def _require_tensor(view: _View, what: str, batch: int, height: int, width: int) -> None:
    """`view` must be a contiguous (batch, 3, >= height, >= width) tensor: the kernels index it densely."""
    if not view.contiguous() or view.shape[:2] != (batch, 3) or view.shape[2] < height or view.shape[3] < width:
        raise KernelBuildError(f"{what} must be a contiguous ({batch}, 3, >={height}, >={width}) tensor, got "
                               f"{view.shape} with strides {view.strides}")  # fmt: skip


def _require_nv12(luma: _View, chroma: _View, chroma_size: tuple[int, int], matrix: int) -> None:
    """Packed luma pixels, packed (N, chroma_size, 2) chroma for them, and a known YUV matrix."""
    if chroma.shape != (luma.shape[0], *chroma_size, 2) or chroma.strides[2:] != (2, 1) or luma.strides[2] != 1:
        raise KernelBuildError(f"chroma must be packed (N, H/2, W/2, 2) for luma {luma.shape}, got {chroma.shape}")
    if matrix not in (601, 709):
        raise KernelBuildError(f"YUV matrix must be 601 or 709, got {matrix}")


def _grid(width: int, height: int, batch: int) -> tuple[int, int, int]:
    return (-(-width // BLOCK[0]), -(-height // BLOCK[1]), batch)


def _i32(value: int) -> ctypes.c_int:
    return ctypes.c_int(int(value))


def _i64(value: int) -> ctypes.c_longlong:
    return ctypes.c_longlong(int(value))


def _ptr(value: int) -> ctypes.c_void_p:
    return ctypes.c_void_p(int(value))


# ------------------------------------------------------------------------------------------------------ kernels


class FrameKernels:
    """The kernels of `kernels/frame_io.cu` loaded on one GPU (its primary context, the one torch and the CUDA
    runtime use), callable from any thread. `FrameKernels.shared(device)` gives one instance per device and process
    (what the backends use: loading a model again does not load the module again)."""

    _shared: dict[int, FrameKernels] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, device: int = 0) -> FrameKernels:
        with cls._shared_lock:
            if device not in cls._shared:
                cls._shared[device] = cls(device)
            return cls._shared[device]

    def __init__(self, device: int = 0, directory: Path | None = None, prebuilt: bool = True) -> None:
        """Args:
        device: the CUDA device index.
        directory: the NVRTC cubin cache (default `cache_dir()`).
        prebuilt: try the fatbin built at install first.
        """
        driver = self.driver = cuda_python.driver(KernelBuildError)
        try:
            self._check(driver.cuInit(0), "cuInit")
            self.device = self._check(driver.cuDeviceGet(int(device)), "cuDeviceGet")
            attribute = driver.CUdevice_attribute
            major = self._check(driver.cuDeviceGetAttribute(
                attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, self.device), "compute capability")
            minor = self._check(driver.cuDeviceGetAttribute(
                attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, self.device), "compute capability")  # fmt: skip
            self.capability = int(major) * 10 + int(minor)
            self.context = self._check(driver.cuDevicePrimaryCtxRetain(self.device), "cuDevicePrimaryCtxRetain")
        except Exception as error:  # no driver (cuda-pathfinder's DynamicLibNotFoundError), no device, ...
            raise KernelBuildError(f"no usable CUDA device {device}: {error}") from None
        self._make_current()
        self.module, self.image = self._load(directory, prebuilt)
        self.functions = {name: self._check(driver.cuModuleGetFunction(self.module, name.encode()), name)
                          for name in KERNELS}  # fmt: skip
        log.info("cpp_ext: frame kernels on GPU %d (sm_%d) from %s", int(device), self.capability, self.image)

    def _check(self, result: Any, what: str) -> Any:
        return cuda_python.check(result, what, KernelBuildError)

    def _make_current(self) -> None:
        """This GPU's context current on the calling thread (a new thread has none; torch may have switched)."""
        current = self._check(self.driver.cuCtxGetCurrent(), "cuCtxGetCurrent")
        if current is None or int(current) != int(self.context):
            self._check(self.driver.cuCtxSetCurrent(self.context), "cuCtxSetCurrent")

    def _load_image(self, data: bytes) -> Any:
        buffer = ctypes.create_string_buffer(data, len(data))
        return self._check(self.driver.cuModuleLoadData(ctypes.addressof(buffer)), "cuModuleLoadData")

    def _load(self, directory: Path | None, prebuilt: bool) -> tuple[Any, str]:
        fatbin = fatbin_path()
        if prebuilt and fatbin.is_file():
            try:
                return self._load_image(fatbin.read_bytes()), f"{fatbin.name} (built at install)"
            except KernelBuildError as error:
                log.info("cpp_ext: %s does not load here (%s); compiling with NVRTC", fatbin.name, error)
        data, path = cached_cubin(self.capability, directory)
        try:
            return self._load_image(data), f"NVRTC cubin {path}"
        except KernelBuildError as error:
            log.warning("cpp_ext: the driver refused %s (%s); compiling it again", path, error)
            data, path = cached_cubin(self.capability, directory, refresh=True)
            return self._load_image(data), f"NVRTC cubin {path}"

    def launch(self, name: str, grid: tuple[int, int, int], args: list[Any], stream: int = 0) -> None:
        """One launch of kernel `name` (arguments as ctypes values, in the kernel's order) on `stream`."""
        self._make_current()
        pointers = (ctypes.c_void_p * len(args))(*[ctypes.addressof(a) for a in args])
        self._check(self.driver.cuLaunchKernel(self.functions[name], *grid, *BLOCK, 0,
                                               self.driver.CUstream(int(stream)), ctypes.addressof(pointers), 0),
                    name)  # fmt: skip

    # -------------------------------------------------------------------------------------------- frame contract

    def to_network(self, frames: Any, out: Any, stream: int = 0, multiple: int | None = None) -> None:
        """uint8 BGR frames (N, H, W, 3) (rows may be pitched) -> `out`, RGB (N, 3, Hp, Wp) float32 or float16 in
        [0, 1], padded to out's size as `derain.frames.to_network(size=...)` pads: edge replication to the network's
        `multiple`, periodic beyond it (None: edge replication over the whole pad)."""
        src = _view(frames, "frames", ("|u1",), 4)
        dst = _view(out, "out", ("<f4", "<f2"), 4)
        batch, height, width, channels = src.shape
        if channels != 3 or src.strides[2:] != (3, 1):
            raise KernelBuildError(f"frames must be packed BGR pixels (N, H, W, 3), got strides {src.strides}")
        _require_tensor(dst, "out", batch, height, width)
        name = "bgr8_to_nchw_f16" if dst.typestr == "<f2" else "bgr8_to_nchw_f32"
        out_h, out_w = dst.shape[2:]
        period_h, period_w = _periods(height, width, out_h, out_w, multiple)
        args = [_ptr(src.pointer), _i32(height), _i32(width), _i64(src.strides[1]), _i64(src.strides[0]),
                _ptr(dst.pointer), _i32(out_h), _i32(out_w), _i32(period_h), _i32(period_w)]  # fmt: skip
        if batch and out_h and out_w:
            self.launch(name, _grid(out_w, out_h, batch), args, stream)

    def from_network(self, tensor: Any, out: Any, stream: int = 0) -> None:
        """RGB (N, 3, Hp, Wp) float32/float16 -> `out`, uint8 BGR frames (N, H, W, 3) (rows may be pitched): the
        top-left H x W, clamped, x255, rounded half to even (`derain.frames.from_network`)."""
        src = _view(tensor, "tensor", ("<f4", "<f2"), 4)
        dst = _view(out, "out", ("|u1",), 4)
        batch, height, width, channels = dst.shape
        _require_tensor(src, "tensor", batch, height, width)
        if channels != 3 or dst.strides[2:] != (3, 1):
            raise KernelBuildError(f"out must be packed BGR pixels (N, H, W, 3), got strides {dst.strides}")
        name = "nchw_to_bgr8_f16" if src.typestr == "<f2" else "nchw_to_bgr8_f32"
        args = [_ptr(src.pointer), _i32(src.shape[2]), _i32(src.shape[3]), _ptr(dst.pointer), _i32(height),
                _i32(width), _i64(dst.strides[1]), _i64(dst.strides[0])]  # fmt: skip
        if batch and height and width:
            self.launch(name, _grid(width, height, batch), args, stream)

    def nv12_to_network(self, luma: Any, chroma: Any, out: Any, matrix: int = 601, full_range: bool = False,
                        stream: int = 0, multiple: int | None = None) -> None:  # fmt: skip
        """NV12 planes (luma (N, H, W), chroma (N, H/2, W/2, 2); rows may be pitched) -> `out`, RGB (N, 3, Hp, Wp)
        padded as `to_network` pads (`derain.cpp_ext.reference.nv12_to_network`)."""
        y, uv = _view(luma, "luma", ("|u1",), 3), _view(chroma, "chroma", ("|u1",), 4)
        dst = _view(out, "out", ("<f4", "<f2"), 4)
        batch, height, width = y.shape
        _require_nv12(y, uv, (-(-height // 2), -(-width // 2)), matrix)
        _require_tensor(dst, "out", batch, height, width)
        name = "nv12_to_nchw_f16" if dst.typestr == "<f2" else "nv12_to_nchw_f32"
        out_h, out_w = dst.shape[2:]
        frame_bytes = 3 * out_h * out_w * dst.itemsize
        for index in range(batch if height and width else 0):  # planes of different frame strides: a launch each
            args = [_ptr(y.pointer + index * y.strides[0]), _i64(y.strides[1]),
                    _ptr(uv.pointer + index * uv.strides[0]), _i64(uv.strides[1]), _i32(height), _i32(width),
                    _i64(0), _i32(matrix), _i32(int(full_range)), _ptr(dst.pointer + index * frame_bytes),
                    _i32(out_h), _i32(out_w), *map(_i32, _periods(height, width, out_h, out_w, multiple))]  # fmt: skip
            self.launch(name, _grid(out_w, out_h, 1), args, stream)

    def network_to_nv12(self, tensor: Any, luma: Any, chroma: Any, matrix: int = 601, full_range: bool = False,
                        stream: int = 0) -> None:  # fmt: skip
        """RGB (N, 3, Hp, Wp) -> `luma` (N, H, W) and `chroma` (N, H/2, W/2, 2) NV12 planes of the top-left H x W
        (H, W even; `derain.cpp_ext.reference.network_to_nv12`)."""
        src = _view(tensor, "tensor", ("<f4", "<f2"), 4)
        y, uv = _view(luma, "luma", ("|u1",), 3), _view(chroma, "chroma", ("|u1",), 4)
        batch, height, width = y.shape
        if height % 2 or width % 2:
            raise KernelBuildError(f"NV12 needs an even frame size, got {width}x{height}")
        _require_nv12(y, uv, (height // 2, width // 2), matrix)
        _require_tensor(src, "tensor", batch, height, width)
        name = "nchw_to_nv12_f16" if src.typestr == "<f2" else "nchw_to_nv12_f32"
        frame_elements = 3 * src.shape[2] * src.shape[3]
        for index in range(batch if height and width else 0):  # planes of different frame strides: a launch each
            args = [_ptr(src.pointer + index * frame_elements * src.itemsize), _i32(src.shape[2]),
                    _i32(src.shape[3]), _ptr(y.pointer + index * y.strides[0]), _i64(y.strides[1]),
                    _ptr(uv.pointer + index * uv.strides[0]), _i64(uv.strides[1]), _i32(height), _i32(width),
                    _i64(0), _i32(matrix), _i32(int(full_range))]  # fmt: skip
            self.launch(name, _grid(width // 2, height // 2, 1), args, stream)

    def tiled(self, run: Callable[[Any], Any], frame: Any, out: Any, tile: tuple[int, int], context: int,
              empty: Callable[[tuple[int, ...], str], Any], multiple: int = 1, stream: int = 0) -> None:  # fmt: skip
        """`derain.frames.tiled` on the device: `run` maps a (1, h, w, 3) uint8 device tile to its restored tile (on
        `stream`); the blend goes into `out` (H, W, 3) uint8. `empty(shape, "uint8" | "float32")` allocates scratch
        device arrays (e.g. torch.empty on the GPU)."""
        from derain.frames import BLEND, tile_origins

        src, dst = _view(frame, "frame", ("|u1",), 3), _view(out, "out", ("|u1",), 3)
        height, width = src.shape[:2]
        if dst.shape != src.shape or src.strides[1:] != (3, 1) or dst.strides[1:] != (3, 1):
            raise KernelBuildError(f"frame and out must be packed (H, W, 3) frames of one size, got {src.shape}, "
                                   f"{dst.shape}")  # fmt: skip
        total, weight = empty((height, width, 3), "float32"), empty((height, width), "float32")
        total_ptr, weight_ptr = _view(total, "total", ("<f4",), 3).pointer, _view(weight, "weight", ("<f4",), 2).pointer
        self._zero(total_ptr, height * width * 3 * 4, stream)
        self._zero(weight_ptr, height * width * 4, stream)
        for top in tile_origins(height, tile[0], context, multiple):
            for left in tile_origins(width, tile[1], context, multiple):
                rows, cols = min(tile[0], height - top), min(tile[1], width - left)
                window = empty((1, rows, cols, 3), "uint8")
                self.launch("extract_tile", _grid(cols, rows, 1), [
                    _ptr(src.pointer), _i32(height), _i32(width), _i64(src.strides[0]), _i32(top), _i32(left),
                    _ptr(_view(window, "tile", ("|u1",), 4).pointer), _i32(rows), _i32(cols)], stream)  # fmt: skip
                restored = _view(run(window), "restored tile", ("|u1",), 4)
                if restored.shape != (1, rows, cols, 3) or not restored.contiguous():
                    raise KernelBuildError(f"run() must return a contiguous (1, {rows}, {cols}, 3) uint8 tile, "
                                           f"got {restored.shape}")  # fmt: skip
                self.launch("blend_tile", _grid(cols, rows, 1), [
                    _ptr(restored.pointer), _i32(rows), _i32(cols), _i32(top), _i32(left), _i32(context),
                    _i32(BLEND), _ptr(total_ptr), _ptr(weight_ptr), _i32(height), _i32(width)], stream)  # fmt: skip
        self.launch("finish_blend", _grid(width, height, 1), [_ptr(total_ptr), _ptr(weight_ptr), _ptr(dst.pointer),
                    _i32(height), _i32(width), _i64(dst.strides[0])], stream)  # fmt: skip

    def _zero(self, pointer: int, nbytes: int, stream: int) -> None:
        self._make_current()
        self._check(self.driver.cuMemsetD8Async(pointer, 0, nbytes, self.driver.CUstream(int(stream))), "memset")
