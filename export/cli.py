"""derain-export: checkpoint -> ONNX -> FP16/INT8/FP8 -> TensorRT / TensorRT-RTX engines, with cards and parity."""

from __future__ import annotations

import argparse
import json
import sys

from derain.cli import EXIT_OK, Problems, run_main, setup_logging
from derain.export.precision import CALIBRATION_METHODS, PRECISIONS


def parser() -> argparse.ArgumentParser:
    from derain.export.pipeline import BUILDERS

    p = argparse.ArgumentParser(prog="derain-export", description=__doc__)
    p.add_argument("--weights", default="builtin", help="checkpoint written by derain-train, or 'builtin' (default: "
                   "the shipped de-rainer)")  # fmt: skip
    p.add_argument("--precision", choices=PRECISIONS, default="fp16")
    p.add_argument("--io", choices=("float", "uint8"), default="uint8",
                   help="uint8: BGR frames in and out, conversion and padding inside the graph")  # fmt: skip
    p.add_argument("--shape", default="720x1280", help="HEIGHTxWIDTH[,HxW...]: one static profile each")
    p.add_argument("--dynamic", help="MINHxMINW:MAXHxMAXW: one dynamic profile (optimum = first --shape)")
    p.add_argument("--builder", choices=BUILDERS, default="tensorrt_rtx")
    p.add_argument("--cc", default="", help="RTX targets: 86,89,120 = one engine each; 86+89+120 = one engine")
    p.add_argument("--calib", default="synthetic", help="folder of frames from the camera, or 'synthetic'")
    p.add_argument("--calib-count", type=int, default=32)
    p.add_argument("--calib-method", choices=CALIBRATION_METHODS, default="entropy")
    p.add_argument("--test", default="synthetic", help="paired folder ({rain,norain}) for parity, or 'synthetic'")
    p.add_argument("--test-count", type=int, default=8)
    p.add_argument("--sample-size", help="HxW of calibration and parity frames for a dynamic graph (default: --shape)")
    p.add_argument("--max-drop", type=float, default=0.3, help="INT8/FP8 dB loss vs FP32 that triggers the sweep")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level 0..5")
    p.add_argument("--out", default="export_out", help="output folder (refused if it holds files, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder once the export "
                   "succeeded (a failed export leaves it as it was)")  # fmt: skip
    p.add_argument("--yaml", help="the options as a YAML file (keys: the flags with underscores, e.g. calib_count)")
    p.add_argument("overrides", nargs="*", help="key=value options over the YAML (e.g. precision=int8 shape=480x640); "
                   "flags given on the command line win")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    setup_logging(library_only=True)
    return run_main("derain-export", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    from derain.config import parse_with_yaml

    args = parse_with_yaml(parser(), argv)
    from derain.builtin import describe_builtin, is_builtin, resolve_weights
    from derain.export.pipeline import ExportRequest, export, parse_shape, parse_target_groups
    from derain.models import load_model

    def body() -> int:
        problems = Problems()
        if is_builtin(args.weights):
            print(f"derain-export: using {describe_builtin(args.weights)}", file=sys.stderr)
        weights = problems.attempt(lambda: str(resolve_weights(args.weights)))
        model = problems.attempt(lambda: load_model(weights)) if weights else None
        shapes = [problems.attempt(lambda s=s: parse_shape(s)) for s in args.shape.split(",")]
        dynamic = [problems.attempt(lambda s=s: parse_shape(s)) for s in args.dynamic.split(":")] if args.dynamic \
            else None  # fmt: skip
        if dynamic is not None and len(dynamic) != 2:
            problems.add(f"--dynamic is MINHxMINW:MAXHxMAXW, got {args.dynamic!r}")
        targets = problems.attempt(lambda: tuple(parse_target_groups(args.cc)))
        sample = problems.attempt(lambda: parse_shape(args.sample_size)) if args.sample_size else None
        problems.raise_if_any()  # every failed parse above added its problem
        request = ExportRequest(
            weights=weights,
            out=args.out,
            precision=args.precision,
            io=args.io,
            shapes=tuple(shapes),
            dynamic=tuple(dynamic) if dynamic else None,
            builder=args.builder,
            targets=targets,
            calib=args.calib,
            calib_count=args.calib_count,
            calib_method=args.calib_method,
            test=args.test,
            test_count=args.test_count,
            sample_size=sample,
            max_drop_db=args.max_drop,
            optimization_level=args.opt_level,
        )
        result = export(request, overwrite=args.overwrite, model=model)  # checks everything before any stage
        print(json.dumps({"onnx": result.onnx, "parity": result.parity, "engines": result.engines,
                          "calibration": result.calibration or None}, indent=2))  # fmt: skip
        return EXIT_OK

    return body()


if __name__ == "__main__":
    sys.exit(main())
