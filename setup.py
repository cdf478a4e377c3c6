"""derain-edge: each top-level folder is a part of the product, installed under the `derain` namespace."""

from setuptools import setup

PARTS = ["models", "data", "quality", "train", "export", "runtime", "cpp_ext"]
SUBPACKAGES = ["runtime.backends"]

setup(
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
        "derain.cpp_ext": ["kernels/*.cu", "*.cu", "*.cpp", "*.h"],
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
            "derain-demo=derain.train.demo:main",
            "derain-export=derain.export.cli:main",
            "derain-stream=derain.runtime.cli:main",
        ]
    },
)
