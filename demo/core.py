"""The demo's run: its stages in order, what each needs, its sizes, and the record of every stage (`Demo`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from derain.outputs import atomic_write_text

log = logging.getLogger("derain.demo")
STREAM = ("rain100H", "rain100L", "rain1400", "rain1200_medium")
UNSEEN = "storm"  # never in the shipped de-rainer's training rain either
# the stages, in the order they run
ORDER = ("data", "continual", "reward", "export", "latency", "stream", "video", "scores")
NEEDS = {
    "continual": ("data",),
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


def clear(path: Path) -> None:
    """Remove a stage's earlier partial output (inside --out only)."""
    if path.exists():
        shutil.rmtree(path)
