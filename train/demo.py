"""`derain-demo` (`make demo`): the whole stack end to end on built-in data, from training to a de-rained video.

Stages, each timed, each recorded in `<out>/stages/<name>.json` (a re-run with the same `--out` reuses the
finished ones; a failed stage says why and the stages that do not need it still run):

1. data: a 4-domain stream with the character of Rain100H -> Rain100L -> Rain1400 -> Rain1200-medium, and the
   unseen `storm` domain, rendered from the built-in scenes (data v2);
2. continual: CLGID (GAN replay + distillation) and sequential fine-tuning over the stream, both starting from the
   shipped default de-rainer (the way a deployed network meets new rain); accuracy-matrix heatmaps;
3. reward: RGSUD's reward-guided self-reinforcement on unpaired `storm` frames, plug-in mode (stage 2 only) on the
   better of the two continual networks; the reward curve;
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
import dataclasses
import json
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from derain.cli import Problems, progress, run_main, setup_logging
from derain.outputs import atomic_write_text

log = logging.getLogger("derain.demo")
STREAM = ("rain100H", "rain100L", "rain1400", "rain1200_medium")
UNSEEN = "storm"  # never in the shipped de-rainer's training rain either
STAGES = ("data", "continual", "reward", "export", "latency", "stream", "scores")
NEEDS = {
    "continual": ("data",),
    "reward": ("data", "continual"),
    "export": ("continual",),
    "latency": ("export",),
    "stream": ("continual",),
    "scores": ("continual",),
}


@dataclasses.dataclass(frozen=True)
class Size:
    """How big every stage runs."""

    images: int  # training images per domain
    side: int  # their size
    iterations: int  # per continual task
    gan_steps: int  # per rain generator
    gan_background: tuple[int, int]
    reward_iterations: int
    reward_sweep: int
    export_shape: tuple[int, int]
    targets: str  # RTX compute capabilities, one engine each
    calib: int
    video_frames: int
    video_size: tuple[int, int]  # width, height


SIZES = {
    "quick": Size(16, 64, 6, 4, (1, 8), 4, 2, (64, 96), "86", 4, 8, (128, 96)),
    "default": Size(48, 128, 40, 40, (1, 8), 16, 8, (240, 320), "86,89,120", 16, 48, (320, 240)),
    "full": Size(200, 256, 1500, 1500, (2, 16), 400, 100, (720, 1280), "86,89,120", 32, 150, (1280, 720)),
}


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


class Demo:
    """One run of the demo: its folder, size, device and the record of every stage."""

    def __init__(self, args: argparse.Namespace) -> None:
        from derain.models.device import resolve_device

        self.out = Path(args.out)
        self.size_name = "quick" if args.quick else "full" if args.full else "default"
        self.size = SIZES[self.size_name]
        self.device = str(resolve_device(args.device))
        self.seed = args.seed
        self.command = (
            "derain-demo " + " ".join(sys.argv[1:])
            if sys.argv[0].endswith("derain-demo")
            else (f"derain-demo --out {args.out}" + (f" --{self.size_name}" if self.size_name != "default" else ""))
        )
        self.stages_dir = self.out / "stages"
        self.redo = {s for s in args.redo.split(",") if s}

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def record(self, stage: str) -> dict | None:
        path = self.stages_dir / f"{stage}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def run_stage(self, stage: str, work: Callable[[Demo], dict]) -> dict:
        """Run one stage unless it finished before (same size); record its outcome either way."""
        previous = self.record(stage)
        if previous and previous["status"] == "done" and previous["size"] == self.size_name and stage not in self.redo:
            log.info("%-9s reused (finished earlier, %.0f s)", stage, previous["seconds"])
            return {**previous, "reused": True}
        missing = [n for n in NEEDS.get(stage, ()) if (self.record(n) or {}).get("status") != "done"]
        started = time.perf_counter()
        if missing:
            result = {"status": "skipped", "error": f"needs {', '.join(missing)}, which did not finish"}
        else:
            try:
                result = {"status": "done", **work(self)}
            except Exception as error:  # a stage that fails says why; the others still run
                log.debug("%s failed:\n%s", stage, traceback.format_exc())
                result = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        result.update(
            stage=stage,
            size=self.size_name,
            seconds=time.perf_counter() - started,
            device=self.device,
            seed=self.seed,
            finished=time.strftime("%Y-%m-%d %H:%M:%S"),
        )
        self.stages_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.stages_dir / f"{stage}.json", json.dumps(result, indent=2, default=str))
        line = f"{stage:<9} {result['status']} in {result['seconds']:.0f} s"
        (log.info if result["status"] == "done" else log.warning)(
            line + ("" if result["status"] == "done" else f": {result['error']}")
        )
        return result


def _main(args: argparse.Namespace) -> int:
    problems = Problems()
    unknown = sorted({s for s in args.redo.split(",") if s} - set(STAGES))
    if unknown:
        problems.add(f"--redo: unknown stage(s) {unknown}; stages: {', '.join(STAGES)}")
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
    from derain.train import demo_stages

    with progress(total=len(STAGES), desc="derain-demo") as bar:
        for stage in STAGES:
            bar.set_postfix(stage=stage)
            results[stage] = demo.run_stage(stage, getattr(demo_stages, f"stage_{stage}"))
            bar.update(1)
    from derain.train.demo_report import write_report

    total = time.perf_counter() - started
    paths = write_report(demo, results, total)
    log.info("report: %s (and %s) in %.0f s total", paths[1], paths[0].name, total)
    failed = [s for s, r in results.items() if r["status"] != "done"]
    if failed:
        log.warning("stages that did not run: %s (the report says why)", ", ".join(failed))
    return 0


def environment() -> dict[str, Any]:
    """What a figure's provenance names: the machine and the libraries."""
    import platform

    import torch

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
    }
    for name in ("onnxruntime", "tensorrt_rtx", "modelopt", "cv2"):
        try:
            module = __import__(name)
            info[name] = getattr(module, "__version__", "?")
        except ImportError:
            info[name] = "not installed"
    return info


def clear(path: Path) -> None:
    """Remove a stage's earlier partial output (inside --out only)."""
    if path.exists():
        shutil.rmtree(path)


if __name__ == "__main__":
    raise SystemExit(main())
