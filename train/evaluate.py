"""`derain-eval`: de-rain a folder with a checkpoint, write the outputs, and score them if clean images exist
(the evaluation itself: `derain.train.evaluation`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

from derain.builtin import describe_builtin, is_builtin, resolve_weights
from derain.cli import EXIT_OK, EXIT_PARTIAL, Problems, number_problems, run_main, setup_logging
from derain.frames import BLEND
from derain.models import load_model
from derain.models.device import resolve_device
from derain.outputs import output_problems
from derain.train.evaluation import evaluate_folder, folder_jobs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="derain-eval", description=__doc__ + "\n\n" + EXIT_STATUSES,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "--weights",
        "--checkpoint",
        dest="weights",
        default="builtin",
        help="checkpoint (.pt) written by derain-train, or 'builtin' (default: the shipped de-rainer)",
    )
    parser.add_argument(
        "--data",
        "--data_path",
        dest="data",
        required=True,
        help="folder with rain/ (and norain/), or a folder of rainy images",
    )
    parser.add_argument(
        "--out", default=None, help="where to write de-rained images and metrics (default: none written)"
    )
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder (files of the "
                        "same names are replaced)")  # fmt: skip
    parser.add_argument("--strict", action="store_true", help="stop at the first unreadable image (default: skip "
                        "it, go on, list it at the end and exit with status 3)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--tile", type=int, default=512, help="tile side for large images (pixels)")
    parser.add_argument("--context", type=int, default=96, help="pixels of context tiles keep around each pixel they "
                        "give (the network's receptive-field radius: at least it, and tiles give the whole image's "
                        "result; the shipped de-rainer's is 88)")  # fmt: skip
    return parser


EXIT_STATUSES = ("exit status: 0 all images done; 2 bad arguments or inputs (nothing written); 3 some images could "
                 "not be read (the others are done, the bad ones listed); 1 a bug")  # fmt: skip


def check_arguments(args: argparse.Namespace) -> tuple[nn.Module, torch.device]:
    """Every problem with the arguments at once, before any image is read: (model, device)."""
    problems = Problems()
    problems.extend(number_problems({"--tile": args.tile}, minimum=16))
    problems.extend(number_problems({"--context": args.context}, minimum=0))
    if args.tile >= 16 and args.context >= 0 and 2 * args.context + BLEND + 8 > args.tile:
        problems.add(f"--context ({args.context}) leaves no room in --tile ({args.tile}): tiles need twice the context "
                     f"plus {BLEND + 8} pixels")  # fmt: skip
    device = problems.attempt(lambda: resolve_device(args.device))
    model = problems.attempt(lambda: load_model(resolve_weights(args.weights)))
    data = Path(args.data)
    if not data.is_dir():
        problems.add(f"--data {data} does not exist" if not data.exists() else f"--data {data} is a file, a folder "
                     "is needed (rain/ and norain/, or rainy images)")  # fmt: skip
    else:
        problems.attempt(lambda: folder_jobs(data))
    if args.out is not None:
        problems.extend(output_problems(args.out, [args.data], overwrite=args.overwrite))
    problems.raise_if_any()
    return model, device


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()

    def body() -> int:
        if is_builtin(args.weights):
            print(f"derain-eval: using {describe_builtin(args.weights)}", file=sys.stderr)
        model, device = check_arguments(args)
        result = evaluate_folder(model, args.data, args.out, device, args.tile, args.context, strict=args.strict)
        print(f"de-rained {result['images']} image(s)" + (f" into {args.out}" if args.out else ""))
        if "mean" in result:
            print("  ".join(f"{k} {v:.4f}" if k.startswith("ssim") else f"{k} {v:.2f}"
                            for k, v in result["mean"].items()))  # fmt: skip
        if result["failed"]:
            print(f"derain-eval: {len(result['failed'])} image(s) could not be processed:", file=sys.stderr)
            for failure in result["failed"]:
                print(f"  {failure['name']}: {failure['reason']}", file=sys.stderr)
            return EXIT_PARTIAL
        return EXIT_OK

    return run_main("derain-eval", body)


if __name__ == "__main__":
    raise SystemExit(main())
