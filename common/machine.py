"""What a measurement ran on: the machine and the library versions, one place for every report and benchmark.

Torch-free at import; torch and the optional libraries are asked only when installed.
"""

from __future__ import annotations

import importlib
import os
import platform
from pathlib import Path
from typing import Any

LIBRARIES = {"torch": "torch", "numpy": "numpy", "opencv": "cv2", "onnxruntime": "onnxruntime", "onnx": "onnx",
             "modelopt": "modelopt", "tensorrt": "tensorrt", "tensorrt_rtx": "tensorrt_rtx",
             "cuda-python": "cuda.bindings"}  # fmt: skip


def libraries() -> dict[str, str]:
    """Versions of the libraries installed here (the missing ones left out)."""
    versions = {}
    for name, module in LIBRARIES.items():
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            continue
        versions[name] = str(getattr(loaded, "__version__", "?"))
    return versions


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine() -> dict[str, Any]:
    """CPU model, the cores this process may use, torch's threads, platform, Python, and the GPU when torch sees one
    (name, compute capability)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())  # fmt: skip
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    facts: dict[str, Any] = {"cpu": cpu, "cores": cores, "platform": platform.platform(),
                             "python": platform.python_version()}  # fmt: skip
    torch = _torch()
    if torch is not None:
        facts["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            facts["gpu"] = torch.cuda.get_device_name(0)
            major, minor = torch.cuda.get_device_capability(0)
            facts["compute_capability"] = f"{major}.{minor}"
    return facts


def device_name() -> str:
    """"CUDA <GPU name>" or "CPU (<n> threads)": what a report's numbers were measured on."""
    facts = machine()
    if "gpu" in facts:
        return f"CUDA {facts['gpu']}"
    return f"CPU ({facts.get('torch_threads', facts['cores'])} threads)"


def environment() -> dict[str, Any]:
    """The machine and the libraries, for a figure's provenance."""
    return {**machine(), "libraries": libraries()}
