"""derain-edge: each top-level folder is a part of the product, installed under the `derain` namespace."""

import os
import runpy
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


class BuildPy(build_py):
    """`DERAIN_BUILD_KERNELS=1 pip install .` also compiles cpp_ext/kernels/frame_io.cu with nvcc into
    `frame_io-<source hash>.fatbin` (SASS for the GPU table of common/gpus.py, PTX for the newest), which
    `derain.cpp_ext.device` loads before compiling with NVRTC at first use. Without the variable nothing is
    compiled; with it, a missing nvcc or a refused kernel fails the install."""

    def run(self) -> None:
        super().run()
        if os.environ.get("DERAIN_BUILD_KERNELS", "0") in ("", "0"):
            return
        source = HERE / "cpp_ext" / "kernels" / "frame_io.cu"
        aot = runpy.run_path(str(HERE / "cpp_ext" / "aot.py"))
        name = aot["fatbin_name"](source.read_bytes())
        editable = getattr(self, "editable_mode", False)  # editable installs read the source tree
        target = source.parent if editable else Path(self.build_lib) / "derain" / "cpp_ext" / "kernels"
        target.mkdir(parents=True, exist_ok=True)
        gencode = runpy.run_path(str(HERE / "common" / "gpus.py"))["nvcc_gencode"]()
        refused = aot["nvcc_fatbin"](source, target / name, gencode)
        if refused:
            raise SystemExit(f"DERAIN_BUILD_KERNELS: {refused}")
        print(f"built {target / name}")

PARTS = ["models", "data", "quality", "train", "export", "runtime", "cpp_ext", "demo"]
SUBPACKAGES = ["runtime.backends"]

setup(
    cmdclass={"build_py": BuildPy},
    name="derain-edge",
    version="0.1.0",
    description="De-raining from training to a camera on a car: CLGID, RGSUD, ONNX/TensorRT export, streaming runtime",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["derain", *[f"derain.{part}" for part in PARTS + SUBPACKAGES]],
    package_dir={"derain": "common", **{f"derain.{part}": part.replace(".", "/") for part in PARTS + SUBPACKAGES}},
    package_data={
        "derain.train": ["configs/*.yaml"],
        "derain.models": ["weights/*.pt", "weights/*.json"],
        "derain.cpp_ext": ["kernels/*.cu", "kernels/*.fatbin"],
        "derain.runtime": ["gstplugin/python/*.py"],
    },
    install_requires=[
        "torch>=2.4",
        "numpy>=1.24",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "tqdm>=4.60",
        "scikit-image>=0.22",
    ],
    extras_require={
        "export": [
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "onnxscript>=0.3",
            "nvidia-modelopt",
            "onnx-graphsurgeon",
            "onnxslim",
            "polygraphy",
            "lief",
            "tensorrt-rtx",
        ],
        "runtime": ["cuda-python>=12"],
        "dev": [
            "pytest>=8",
            "cuda-python>=12",
            "nvidia-cuda-nvrtc",  # CI compiles the kernels with NVRTC (no GPU needed); GPU machines may use their own
            "ruff>=0.5",
            "setuptools>=64",
            "wheel",
            "onnx>=1.16",
            "onnxruntime>=1.18",
            "onnxscript>=0.3",
        ],
    },
    entry_points={
        "console_scripts": [
            "derain-data=derain.data.cli:main",
            "derain-train=derain.train.cli:main",
            "derain-eval=derain.train.evaluate:main",
            "derain-adapt=derain.train.adapt:main",
            "derain-demo=derain.demo.cli:main",
            "derain-export=derain.export.cli:main",
            "derain-stream=derain.runtime.cli:main",
            "derain-gst=derain.runtime.gst_cli:main",
        ]
    },
)
