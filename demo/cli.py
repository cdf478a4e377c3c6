"""`derain-demo` (`make demo`): the whole stack end to end on built-in data, from training to a de-rained video.

Stages, each timed, each recorded in `<out>/stages/<name>.json` (a re-run with the same `--out` reuses the
finished ones; a failed stage says why and the stages that do not need it still run):

1. data: a 4-domain stream with the character of Rain100H -> Rain100L -> Rain1400 -> Rain1200-medium, and the
   unseen `storm` domain, rendered from the built-in scenes (data v2);
2. continual: CLGID (GAN replay + distillation) and sequential fine-tuning over the stream, both starting from the
   shipped default de-rainer (the way a deployed network meets new rain); accuracy-matrix heatmaps;
3. reward: `derain-adapt`: the shipped de-rainer adapted to a new camera's rain (`storm`, which it never saw) from
   unpaired rendered footage (rainy and dry clips), keeping the earlier rain; before/after frames, the fitted rain;
4. export: ONNX FP32, FP16 and INT8 (ModelOpt, calibrated), TensorRT-RTX engines built ahead of time for RTX
   targets, parity against FP32 and the clean frames, engine cards;
5. latency: each graph on this machine (frames of the export size);
6. stream: a synthetic rainy video through the best backend here (TensorRT where an engine runs, else PyTorch
   CUDA with the fused kernels, else ONNX Runtime on the CPU), side by side, with its statistics;
7. scores: every network on the data v2 test set (rainy input and output per domain, 95 % CIs, the clean-input
   column) and before/after grids with zoomed crops.

Then `<out>/report.md` and `<out>/report.html` (opens from disk; images and video are files beside it).
`--quick`: CI size (about a minute); default: at most 10 minutes on a 2-core CPU; `--full`: a GPU-size config.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from derain.cli import Problems, progress, run_main, setup_logging
from derain.demo.core import ORDER, Demo
from derain.demo.report import write_report
from derain.demo.stages import STAGES

log = logging.getLogger("derain.demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="derain-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="derain_out", help="output folder (stages, report, images, video)")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="CI size: every stage, tiny")
    size.add_argument("--full", action="store_true", help="a GPU-size configuration")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (training and the PyTorch path)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--redo", default="", help="comma-separated stages to run again even if finished")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    return run_main("derain-demo", lambda: _main(args))


def _main(args: argparse.Namespace) -> int:
    problems = Problems()
    unknown = sorted({s for s in args.redo.split(",") if s} - set(ORDER))
    if unknown:
        problems.add(f"--redo: unknown stage(s) {unknown}; stages: {', '.join(ORDER)}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        problems.add(f"--out {out} is a file, a folder is needed")
    elif out.is_dir() and any(out.iterdir()) and not (out / "stages").is_dir():
        problems.add(f"--out {out} holds files that are not a demo's; choose another folder")
    problems.raise_if_any()
    demo = Demo(args)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log.info("derain-demo (%s size) on %s -> %s", demo.size_name, demo.device, out)
    results = {}
    with progress(total=len(ORDER), desc="derain-demo") as bar:
        for stage in ORDER:
            bar.set_postfix(stage=stage)
            results[stage] = demo.run_stage(stage, STAGES.get(stage))
            bar.update(1)
    total = time.perf_counter() - started
    paths = write_report(demo, results, total)
    log.info("report: %s (and %s) in %.0f s total", paths[1], paths[0].name, total)
    failed = [s for s, r in results.items() if r["status"] != "done"]
    if failed:
        log.warning("stages that did not run: %s (the report says why)", ", ".join(failed))
    return 0




if __name__ == "__main__":
    raise SystemExit(main())
