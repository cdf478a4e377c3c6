"""derain-export: checkpoint -> ONNX -> FP16/INT8/FP8 -> TensorRT / TensorRT-RTX engines, with cards and parity."""

from __future__ import annotations

import argparse
import json
import logging
import sys

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
    p.add_argument("--out", default="export_out")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("derain").setLevel(logging.INFO)
    from derain.builtin import describe_builtin, is_builtin, resolve_weights
    from derain.export.pipeline import ExportRequest, export, parse_shape, parse_target_groups

    try:
        if is_builtin(args.weights):
            print(f"derain-export: using {describe_builtin()}", file=sys.stderr)
        request = ExportRequest(
            weights=str(resolve_weights(args.weights)),
            out=args.out,
            precision=args.precision,
            io=args.io,
            shapes=tuple(parse_shape(s) for s in args.shape.split(",")),
            dynamic=tuple(parse_shape(s) for s in args.dynamic.split(":")) if args.dynamic else None,
            builder=args.builder,
            targets=tuple(parse_target_groups(args.cc)),
            calib=args.calib,
            calib_count=args.calib_count,
            calib_method=args.calib_method,
            test=args.test,
            test_count=args.test_count,
            sample_size=parse_shape(args.sample_size) if args.sample_size else None,
            max_drop_db=args.max_drop,
            optimization_level=args.opt_level,
        )
        result = export(request)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"derain-export: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"onnx": result.onnx, "parity": result.parity, "engines": result.engines}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
