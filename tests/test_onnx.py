"""Every network exports to ONNX with dynamic H/W, standard ops only, and matches torch on onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain.export.onnx_export import export_onnx
from derain.models import build_model, prediction

onnx = pytest.importorskip("onnx", reason="the [dev] extra installs onnx")
ort = pytest.importorskip("onnxruntime", reason="the [dev] extra installs onnxruntime")

# Operators of the default ONNX domain that TensorRT and TensorRT-RTX parse natively.
STANDARD_OPS = {
    "Add", "Sub", "Mul", "Div", "Conv", "ConvTranspose", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Concat",
    "Slice", "Split", "Reshape", "Transpose", "Shape", "Gather", "Expand", "Resize", "ReduceMean", "Sqrt", "Pow",
    "Squeeze", "Unsqueeze", "Constant", "ConstantOfShape", "DepthToSpace", "SpaceToDepth", "Identity", "Cast",
    "GlobalAveragePool", "Range", "Floor", "Max", "Min", "Clip", "Where", "Equal",
}  # fmt: skip


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.mark.parametrize("name", sorted(TINY_NETWORKS))
def test_network_exports_to_standard_onnx_and_matches_torch(name, tmp_path):
    # MPRNet's dynamic-shape export takes the exporter minutes on 2 cores (its static one a third of that): it is
    # exported at one size here; the other three cover dynamic shapes
    dynamic = name != "mprnet"
    model = build_model(name, **TINY_NETWORKS[name]).eval()
    path = export_onnx(model, tmp_path / f"{name}.onnx", height=32 if dynamic else 40, width=32 if dynamic else 48,
                       dynamic=dynamic)  # fmt: skip
    graph = onnx.load(str(path))
    ops = {node.op_type for node in graph.graph.node}
    domains = {node.domain for node in graph.graph.node}
    assert domains <= {"", "ai.onnx"}, domains
    assert ops <= STANDARD_OPS, ops - STANDARD_OPS
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shapes = [(1, 3, 40, 48), (2, 3, 24, 56)] if dynamic else [(1, 3, 40, 48)]
    for shape in shapes:  # sizes other than the export example (dynamic graphs)
        image = torch.rand(*shape)
        with torch.no_grad():
            expected = prediction(model(image)).numpy()
        got = session.run(None, {"image": image.numpy()})[0]
        assert got.shape == expected.shape
        assert psnr_db(got, expected) >= 50


def test_export_rejects_a_shape_off_the_network_multiple(tmp_path):
    model = build_model("realtime", **TINY_NETWORKS["realtime"])
    with pytest.raises(ValueError, match="not a multiple of the network's 8"):
        export_onnx(model, tmp_path / "x.onnx", height=30, width=32)
