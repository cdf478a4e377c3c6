"""Can a TensorRT-RTX engine hold the frame-conversion kernel as a plugin, built ahead of time on a CPU-only machine?

Builds, for an RTX target (default SM86) with no GPU, a one-layer ONNX graph whose node is a Python IPluginV3
(`DerainBgr8ToNchw`: uint8 BGR (1, H, W, 3) -> float RGB (1, 3, H, W)), registered with the plugin registry and
picked up by the ONNX parser's plugin fallback, in two variants:

- `uint8`: the plugin takes the camera's uint8 frame, as the product needs;
- `float`: an ONNX Cast to float32 comes first and the plugin takes floats.

The plugin's `enqueue` is a stub: nothing runs here, the question is whether the builder accepts the layer.
Writes `runs/benchmarks/plugin_probe.{md,json}` (`--results`: benchmarks/results/) with each variant's outcome and
the builder's exact error. The ONNX parser dlopen()s the unversioned `libtensorrt_rtx.so` to create a plugin layer
and the wheel ships only `.so.1`: the script links it in a temporary folder and re-runs itself with that folder on
LD_LIBRARY_PATH (without it the parser aborts the process).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

NAME, VERSION = "DerainBgr8ToNchw", "1"
RESULTS = Path(__file__).parent / "results"


def build(variant: str, target: str, height: int = 64, width: int = 64) -> dict:
    """One AOT build in this process; returns {"built", "bytes", "errors", "phases"}."""
    import tensorrt_rtx as trt
    from onnx import TensorProto, helper

    plugin_input = trt.DataType.UINT8 if variant == "uint8" else trt.DataType.FLOAT
    errors: list[str] = []
    phases: list[str] = []

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity, message) -> None:  # noqa: ANN001
            if severity in (trt.ILogger.ERROR, trt.ILogger.INTERNAL_ERROR):
                errors.append(message)

    class Plugin(trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
        def __init__(self) -> None:
            for base in (trt.IPluginV3, trt.IPluginV3OneCore, trt.IPluginV3OneBuild, trt.IPluginV3OneRuntime):
                base.__init__(self)
            self.plugin_name, self.plugin_version, self.plugin_namespace, self.num_outputs = NAME, VERSION, "", 1

        def get_capability_interface(self, kind):  # noqa: ANN001, ANN201
            return self

        def clone(self):  # noqa: ANN201
            return Plugin()

        def get_output_data_types(self, input_types):  # noqa: ANN001, ANN201
            return [trt.DataType.FLOAT]

        def get_output_shapes(self, inputs, shape_inputs, expr_builder):  # noqa: ANN001, ANN201
            out = trt.DimsExprs(4)
            out[0], out[1], out[2], out[3] = inputs[0][0], expr_builder.constant(3), inputs[0][1], inputs[0][2]
            return [out]

        def supports_format_combination(self, pos, in_out, num_inputs):  # noqa: ANN001, ANN201
            desc = in_out[pos].desc
            wanted = plugin_input if pos == 0 else trt.DataType.FLOAT
            return desc.format == trt.TensorFormat.LINEAR and desc.type == wanted

        def configure_plugin(self, inputs, outputs):  # noqa: ANN001, ANN201
            phases.append("configure_plugin")

        def get_workspace_size(self, inputs, outputs):  # noqa: ANN001, ANN201
            return 0

        def get_valid_tactics(self):  # noqa: ANN201
            return []

        def on_shape_change(self, inputs, outputs):  # noqa: ANN001, ANN201
            pass

        def set_tactic(self, tactic):  # noqa: ANN001, ANN201
            pass

        def attach_to_context(self, context):  # noqa: ANN001, ANN201
            return self.clone()

        def get_fields_to_serialize(self):  # noqa: ANN201
            return trt.PluginFieldCollection([])

        def enqueue(self, input_desc, output_desc, inputs, outputs, workspace, stream):  # noqa: ANN001, ANN201
            raise NotImplementedError("a build-time probe: nothing runs")

    class Creator(trt.IPluginCreatorV3One):
        def __init__(self) -> None:
            trt.IPluginCreatorV3One.__init__(self)
            self.name, self.plugin_version, self.plugin_namespace = NAME, VERSION, ""
            self.field_names = trt.PluginFieldCollection([])

        def create_plugin(self, name, fc, phase):  # noqa: ANN001, ANN201
            phases.append(f"create_plugin({phase})")
            return Plugin()

    logger = Logger()
    creator = Creator()
    trt.get_plugin_registry().register_creator(creator, "")
    nodes, plugin_in = [], "bgr8"
    if variant == "float":
        nodes.append(helper.make_node("Cast", ["bgr8"], ["bgr_f"], to=TensorProto.FLOAT))
        plugin_in = "bgr_f"
    nodes.append(helper.make_node(NAME, [plugin_in], ["nchw"], name="frame_in", plugin_version=VERSION,
                                  plugin_namespace=""))  # fmt: skip
    graph = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("bgr8", TensorProto.UINT8,
                              [1, height, width, 3])], [helper.make_tensor_value_info("nchw", TensorProto.FLOAT,
                              [1, 3, height, width])])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model.SerializeToString()):
        errors += [str(parser.get_error(i)) for i in range(parser.num_errors)]
        return {"built": False, "bytes": 0, "errors": errors, "phases": phases}
    config = builder.create_builder_config()
    config.num_compute_capabilities = 1
    config.set_compute_capability(getattr(trt.ComputeCapability, target), 0)
    config.builder_optimization_level = 0
    serialized = builder.build_serialized_network(network, config)
    size = len(bytes(serialized)) if serialized is not None else 0
    return {"built": serialized is not None, "bytes": size, "errors": errors, "phases": phases,
            "library": f"tensorrt_rtx {trt.__version__}", "target": target}  # fmt: skip


def library_folder() -> Path:
    """A temporary folder holding `libtensorrt_rtx.so` -> the wheel's `libtensorrt_rtx.so.1`."""
    import importlib.util

    spec = importlib.util.find_spec("tensorrt_rtx_libs")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tensorrt_rtx is not installed (pip install tensorrt-rtx)")
    versioned = next(Path(list(spec.submodule_search_locations)[0]).glob("libtensorrt_rtx.so.*"))
    folder = Path(tempfile.mkdtemp(prefix="trt_rtx_lib_"))
    (folder / "libtensorrt_rtx.so").symlink_to(versioned)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="SM86", help="RTX compute capability: SM75, SM80, SM86, SM89, SM120...")
    parser.add_argument("--variant", choices=("uint8", "float"), help=argparse.SUPPRESS)  # the child process
    parser.add_argument("--results", action="store_true")
    args = parser.parse_args()
    if args.variant:  # child: one build, its outcome as JSON on stdout
        print(json.dumps(build(args.variant, args.target)))
        return
    folder = library_folder()
    env = {**os.environ, "LD_LIBRARY_PATH": f"{folder}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    outcomes = {}
    for variant in ("uint8", "float"):
        done = subprocess.run([sys.executable, __file__, "--variant", variant, "--target", args.target], env=env,
                              capture_output=True, text=True)  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        outcomes[variant] = json.loads(lines[-1]) if lines else {"built": False, "bytes": 0, "phases": [],
                                                                   "errors": [done.stderr.strip()[-500:]]}  # fmt: skip
    out = (RESULTS if args.results else Path("runs/benchmarks")) / "plugin_probe"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(outcomes, indent=2))
    command = f"python benchmarks/plugin_probe.py --target {args.target}" + (" --results" if args.results else "")
    lines = ["# A frame-conversion plugin inside a TensorRT-RTX engine, built on a CPU-only machine", "",
             f"Command: `{command}`.",
             "A Python IPluginV3 (`DerainBgr8ToNchw`) in an ONNX graph, built ahead of time for one RTX target "
             "with no GPU; `plugin calls`: what the builder asked of the plugin.", "",
             "| plugin input | engine built | bytes | plugin calls | builder errors |",
             "|---|---|---|---|---|"]  # fmt: skip
    for variant, outcome in outcomes.items():
        errors = "; ".join(outcome["errors"]) or "-"
        calls = ", ".join(dict.fromkeys(outcome["phases"])) or "-"
        lines.append(f"| {variant} | {'yes' if outcome['built'] else 'no'} | {outcome['bytes']} | {calls} | {errors} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
