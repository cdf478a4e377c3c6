"""Export stages on CPU: uint8 frame graphs, FP16/INT8 graphs on onnxruntime, real TensorRT-RTX engines and cards,
the sensitivity sweep, and the errors a user can hit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_NETWORKS

from derain.cli import UsageError
from derain.data.io import write_image
from derain.export.calibration import synthetic_frames
from derain.export.onnx_export import read_metadata
from derain.export.pipeline import export, parse_target_groups
from derain.export.precision import quantizable_nodes
from derain.models import build_model, save_checkpoint
from derain.models.registry import CheckpointError
from derain.runtime import BackendError, Derainer
from derain.runtime.card import can_run, read_card
from derain.runtime.choose import choose_artifact
from derain.train.state import load_state

onnx = pytest.importorskip("onnx", reason="the [dev] extra installs onnx")
pytest.importorskip("onnxruntime", reason="the [dev] extra installs onnxruntime")


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny realtime net trained for a few steps, so its output is not the identity."""
    torch.manual_seed(0)
    model = build_model("realtime", **TINY_NETWORKS["realtime"])
    frames = torch.from_numpy(synthetic_frames(8, 32, 32)).permute(0, 3, 1, 2).float() / 255
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(20):
        loss = (model(frames) - frames.mean(1, keepdim=True)).abs().mean()  # any non-trivial mapping
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "realtime.pt", model)


def test_fp16_and_int8_graphs_run_and_stay_close_to_fp32(checkpoint, tmp_path):
    results = {}
    for precision in ("fp16", "int8"):
        results[precision] = export(
            weights=str(checkpoint), out=str(tmp_path / precision), precision=precision, shapes=((48, 64),),
            builder="onnx-only", calib_count=8, test_count=3, max_drop_db=100,
        )  # fmt: skip
    fp16 = onnx.load(results["fp16"].onnx["fp16"])
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in fp16.graph.initializer)
    int8 = onnx.load(results["int8"].onnx["int8"])
    ops = [node.op_type for node in int8.graph.node]
    assert ops.count("QuantizeLinear") >= len(quantizable_nodes(results["int8"].onnx["fp32"]))
    # floors: FP16 is near-lossless on [0, 1] images; INT8 per-tensor PTQ of a tiny net keeps > 30 dB
    assert results["fp16"].parity["fp16"]["psnr_rgb_fp32"] >= 45
    assert results["int8"].parity["int8"]["psnr_rgb_fp32"] >= 30
    # the FP32 graph against the PyTorch network it came from, on a frame of its own size: within one grey level
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with Derainer(checkpoint, backend="pytorch", device="cpu") as torch_path, Derainer(results["int8"].onnx["fp32"]) \
            as graph:  # fmt: skip
        difference = np.abs(torch_path(frame).astype(int) - graph(frame).astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.05
    meta = read_metadata(results["int8"].onnx["int8"])
    assert meta["precision"] == "int8" and meta["model"]["name"] == "realtime" and meta["io"] == "uint8"


def test_the_record_says_how_many_calibration_frames_were_really_used(checkpoint, tmp_path):
    """3 readable images and a broken one, 32 asked: 3 used, the broken one named; the folder appears whole."""
    calib = tmp_path / "calib"
    for index, frame in enumerate(synthetic_frames(3, 40, 40, seed=3)):
        write_image(calib / f"f{index}.png", frame)
    (calib / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    result = export(weights=str(checkpoint), out=str(out), precision="int8", shapes=((32, 32),), builder="onnx-only",
                    calib=str(calib), calib_count=32, test_count=2, max_drop_db=100)  # fmt: skip
    assert result.calibration["asked"] == 32 and result.calibration["frames"] == 3
    assert result.calibration["skipped"] == ["broken.png"]
    assert json.loads((out / "export.json").read_text())["calibration"]["frames"] == 3
    assert Path(result.onnx["int8"]).parent == out and Path(result.onnx["int8"]).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib", "out"]  # no staging folder left behind


def test_sensitivity_sweep_keeps_the_worst_layers_in_high_precision(checkpoint, tmp_path):
    result = export(
        weights=str(checkpoint), out=str(tmp_path), precision="int8", shapes=((32, 32),), builder="onnx-only",
        calib_count=4, test_count=2, max_drop_db=-1.0,  # impossible budget: forces the sweep
    )  # fmt: skip
    convs = quantizable_nodes(result.onnx["fp32"])
    assert [node for node, _ in result.sensitivity] and {node for node, _ in result.sensitivity} == set(convs)
    scores = [score for _, score in result.sensitivity]
    assert scores == sorted(scores)
    assert result.kept_high_precision == [node for node, _ in result.sensitivity[: len(result.kept_high_precision)]]
    graph = onnx.load(result.onnx["int8"]).graph
    producers = {out: node.op_type for node in graph.node for out in node.output}
    for node in graph.node:
        if node.name in result.kept_high_precision:
            assert producers.get(node.input[1]) != "DequantizeLinear", node.name
    assert "int8_before_protection" in result.parity


def test_fp8_below_sm89_and_bad_shapes_and_architectures_fail_before_any_stage(checkpoint, tmp_path):
    with pytest.raises(UsageError, match="FP8 needs compute capability 89"):
        export(weights=str(checkpoint), out=str(tmp_path / "a"), precision="fp8", targets=((86,), (89,)))
    with pytest.raises(ValueError, match="not a multiple of the network's 8"):
        export(weights=str(checkpoint), out=str(tmp_path / "b"), io="float", shapes=((30, 32),))
    state = load_state(checkpoint)
    state["model"]["name"] = "swinir"
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="swinir"):
        export(weights=str(tmp_path / "other.pt"), out=str(tmp_path / "c"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert parse_target_groups("86+89,120") == [(86, 89), (120,)]
    with pytest.raises(ValueError, match="unknown compute capability"):
        parse_target_groups("90")


def test_cli_reports_errors_in_one_line(checkpoint, tmp_path, capsys):
    from derain.export.cli import main

    assert main(["--weights", str(checkpoint), "--precision", "fp8", "--cc", "86", "--out", str(tmp_path)]) == 2
    assert "FP8 needs compute capability 89" in capsys.readouterr().err


@pytest.fixture
def trt():
    return pytest.importorskip("tensorrt_rtx", reason="tensorrt-rtx is not installed (the [export] extra installs it)")


@pytest.mark.trt
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_rtx_engines_build_on_cpu_for_sm86_and_sm89_with_cards(trt, checkpoint, tmp_path, precision):
    result = export(
        weights=str(checkpoint), out=str(tmp_path), precision=precision, shapes=((32, 48),),
        dynamic=((16, 16), (64, 64)), targets=((86,), (89,)), calib_count=4, test_count=2, max_drop_db=100,
    )  # fmt: skip
    assert [engine["targets"] for engine in result.engines] == [[86], [89]]
    for engine in result.engines:
        card = read_card(engine["engine"])
        assert card["builder"]["library"] == "tensorrt_rtx" and card["builder"]["version"] == trt.__version__
        assert card["builder"]["targets"] == engine["targets"] and card["precision"] == precision
        assert card["inputs"][0]["dtype"] == "UINT8" and card["inputs"][0]["name"] == "frame"
        assert card["outputs"][0]["dtype"] == "UINT8"
        assert card["profiles"][0]["minimum"] == [1, 16, 16, 3] and card["profiles"][0]["maximum"] == [1, 64, 64, 3]
        assert card["engine_bytes"] == engine["bytes"] > 10_000
        assert card["parity"]["psnr_rgb_fp32"] > 30
        layers = json.loads((tmp_path / card["layers"]).read_text())
        assert layers["layers"]
        # on another GPU (the H100 is SM90, which TensorRT-RTX does not support) the check names the targets
        verdict = can_run(engine["engine"], compute_capability=90)
        assert not verdict and f"SM{engine['targets'][0]}" in verdict.reason and "SM90" in verdict.reason
        assert "--builder tensorrt" in verdict.reason  # the H100 is no RTX target
        assert "--cc 120" in can_run(engine["engine"], compute_capability=120).reason
        assert can_run(engine["engine"], compute_capability=engine["targets"][0])
        # the runtime checks the card before touching the engine: a clear refusal on a machine it cannot run on
        here = can_run(engine["engine"])
        if not here:
            assert card["parity"]["engine"] == {"not_measured": here.reason}
            with pytest.raises(BackendError, match="none is visible|SM"):
                Derainer(engine["engine"])
        else:  # a GPU of the targets: export measured the engine itself
            assert card["parity"]["engine"]["psnr_rgb_fp32"] > 30


@pytest.mark.trt
def test_engine_card_of_another_library_version_is_refused(trt, checkpoint, tmp_path):
    result = export(
        weights=str(checkpoint), out=str(tmp_path), precision="fp32", shapes=((32, 32),), targets=((89,),),
        test_count=1,
    )  # fmt: skip
    engine = result.engines[0]["engine"]
    card_file = tmp_path / (engine.rsplit("/", 1)[1].replace(".engine", ".json"))
    card = json.loads(card_file.read_text())
    card["builder"]["version"] = "0.0.1"
    card_file.write_text(json.dumps(card))
    verdict = can_run(engine, compute_capability=89)
    assert not verdict and "0.0.1" in verdict.reason and "rebuild" in verdict.reason
    with pytest.raises(BackendError, match="0.0.1"):
        Derainer(engine)
    if not torch.cuda.is_available():
        card["builder"]["version"] = trt.__version__
        card_file.write_text(json.dumps(card))
        verdict = can_run(engine)
        assert not verdict and "needs a CUDA GPU" in verdict.reason
        # a folder of what export wrote: the engine is passed over with the card's reason, the graph is chosen
        choice = choose_artifact(tmp_path)
        assert choice.path.suffix == ".onnx" and any("needs a CUDA GPU" in why for why in choice.passed_over)
        card_file.unlink()  # built with trtexec: no card; read from the engine itself, on a GPU only
        assert any("none is visible" in why for why in choose_artifact(tmp_path).passed_over)
        with pytest.raises(BackendError, match="needs a CUDA GPU"):
            Derainer(engine)


def test_fp16_graph_keeps_layernorm_reductions_in_fp32(tmp_path):
    model = build_model("nafnet", **TINY_NETWORKS["nafnet"])
    weights = save_checkpoint(tmp_path / "nafnet.pt", model)
    result = export(
        weights=str(weights), out=str(tmp_path / "out"), precision="fp16", shapes=((32, 32),), builder="onnx-only",
        calib_count=2, test_count=2,
    )  # fmt: skip
    graph = onnx.shape_inference.infer_shapes(onnx.load(result.onnx["fp16"])).graph
    types = {value.name: value.type.tensor_type.elem_type for value in graph.value_info}
    reductions = [node for node in graph.node if node.op_type in ("ReduceMean", "Pow", "Sqrt")]
    assert reductions
    assert all(types.get(node.output[0]) == onnx.TensorProto.FLOAT for node in reductions)
    assert any(t == onnx.TensorProto.FLOAT16 for t in types.values())
    assert result.parity["fp16"]["psnr_rgb_fp32"] >= 45


def test_cli_takes_a_yaml_and_overrides_and_flags_win(checkpoint, tmp_path):
    from derain.export.cli import main

    options = tmp_path / "export.yaml"
    options.write_text(f"weights: {checkpoint}\nprecision: fp16\nbuilder: onnx-only\nshape: 32x32\ntest_count: 2\n")
    out = tmp_path / "out"
    assert main(["--yaml", str(options), "precision=int8", "calib_count=4", "--precision", "fp32", "--out",
                 str(out)]) == 0  # fmt: skip
    written = json.loads((out / "export.json").read_text())
    assert list(written["onnx"]) == ["fp32"]  # the flag beat the override, which beat the YAML
    assert read_metadata(out / "model_fp32.onnx")["shapes"] == [[32, 32]]
