"""The ahead-of-time build of the kernels with nvcc, import-free on purpose: `setup.py` runs this file before derain
is installed (`DERAIN_BUILD_KERNELS=1 pip install .`), and `derain.cpp_ext.build_fatbin` calls it after."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path


def source_hash(source: bytes) -> str:
    """What names a build of one revision of the source (fatbins here, NVRTC cubins in derain.cpp_ext.device)."""
    return hashlib.sha256(source).hexdigest()[:16]


def fatbin_name(source: bytes) -> str:
    """The file the install's build writes beside the source and `FrameKernels` loads first."""
    return f"frame_io-{source_hash(source)}.fatbin"


def nvcc_fatbin(source: Path, out: Path, gencode: list[str], nvcc: str = "nvcc") -> str | None:
    """Compile `source` into the fatbin `out` (SASS/PTX as `gencode` says; warnings are errors). Returns None when
    it is built, else why not (no nvcc, or the compiler's message)."""
    if shutil.which(nvcc) is None:
        return f"{nvcc} not found: the CUDA toolkit is needed to build the kernels ahead of time"
    command = [nvcc, "-fatbin", "--Werror", "all-warnings", "-Xcompiler", "-Wall", "-O3", *gencode,
               "-o", str(out), str(source)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"nvcc refused {Path(source).name}: {(done.stderr or done.stdout).strip()[-2000:]}"
    return None
