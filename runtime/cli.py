"""derain-stream: de-rain a camera, stream, video file or folder through an engine, ONNX graph or checkpoint.

Examples:
  derain-stream --model engines/model_fp16_sm89.engine --source csi://0 --sink display://0 --side-by-side
  derain-stream --model export_out/model_fp32.onnx --source "synthetic://rain100H?size=640x480&frames=60" \\
      --sink out.mp4 --side-by-side
  derain-stream --model final.pt --source rtsp://camera/stream --sink rtp://127.0.0.1:5000 --deadline-ms 50
  derain-stream --model engines/ --source "gst:v4l2src ! videoconvert" --frames-log frames.jsonl --reconnect 5

A status line goes to stderr once a second; the final statistics (JSON) go to stdout. Ctrl-C or SIGTERM stops the
stream cleanly: threads joined, the video file finalized.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from derain.builtin import describe_builtin, is_builtin, resolve_weights
from derain.cli import EXIT_INPUT, EXIT_PARTIAL, InputError, UsageError, one_line, run_main, setup_logging
from derain.outputs import atomic_write_text, output_problems, overlap_problem

log = logging.getLogger("derain.runtime.cli")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="derain-stream", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--model", default="builtin", help=".engine/.plan (TensorRT), .onnx (ONNX Runtime), .pt "
                   "(PyTorch), 'builtin' (default: the shipped de-rainer, on PyTorch) or 'builtin-temporal' (the "
                   "shipped video de-rainer, which also sees the previous frame)")  # fmt: skip
    p.add_argument("--source", required=True, help="csi://N, v4l2:///dev/videoN, N, rtsp://..., a video file, a "
                   "folder, gst:PIPELINE (GStreamer), synthetic://DOMAIN?size=WxH&fps=F&frames=N")  # fmt: skip
    p.add_argument("--sink", help="display://0, out.mp4/.avi/.mkv, a folder, rtp://HOST:PORT[?codec=h264|vp8|jpeg], "
                   "gst:appsrc ! ... (GStreamer)")  # fmt: skip
    p.add_argument("--side-by-side", action="store_true", help="write rainy | de-rained with an fps/latency overlay")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--lossless", action="store_true", default=None, help="process every frame (default for "
                      "files and folders)")  # fmt: skip
    mode.add_argument("--live", dest="lossless", action="store_false", help="newest frame only, drop stale ones "
                      "(default for cameras and streams)")  # fmt: skip
    p.add_argument("--max-fps", type=float, help="process at most this many frames a second")
    p.add_argument("--deadline-ms", type=float, help="frames that would be older than this when done are passed "
                   "through (or dropped) and counted")  # fmt: skip
    p.add_argument("--deadline-action", choices=("passthrough", "drop"), default="passthrough")
    p.add_argument("--frames", type=int, help="stop after this many output frames")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--backend", choices=("tensorrt", "onnxruntime", "pytorch"), help="default: from the suffix")
    p.add_argument("--precision", choices=("best", "fp32", "fp16", "int8", "fp8"), help="--model DIR: which "
                   "artifact to pick (default best: the fastest this machine runs); a checkpoint: fp32 / fp16 (fp16 "
                   "needs CUDA)")  # fmt: skip
    p.add_argument(
        "--kernels",
        choices=("auto", "on", "off"),
        help="PyTorch backend on CUDA and float TensorRT engines: the fused pixel-path "
        "kernels of derain.cpp_ext (default auto: when they build here; the log says which path ran)",
    )
    p.add_argument("--threads", type=int, help="CPU threads of ONNX Runtime / PyTorch (default: the cores less one, "
                   "which bounds latency when the CPU is shared: benchmarks/results/cpu_threads.md)")  # fmt: skip
    p.add_argument("--open-timeout", type=float, default=10.0, help="seconds a source may take to open")
    p.add_argument("--wait-for-source", type=float, default=0.0, metavar="SECONDS", help="keep trying a source that "
                   "is not up yet (a camera still booting) this long before giving up (default 0: it must open now)")
    p.add_argument("--reconnect", type=int, metavar="N", help="reopen a live source that fails at most N times in a "
                   "row, then stop with an error (default: forever; 0: never)")
    p.add_argument("--rtsp-latency", type=int, default=200, metavar="MS", help="rtsp:// jitter buffer (GStreamer "
                   "rtspsrc latency; default 200)")
    p.add_argument("--frames-log", metavar="PATH", help="one JSON line per frame: index, the source's timestamp and "
                   "its clock, action (derained / dry / passthrough / dropped), rain score, latency")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing output video / write into a "
                   "non-empty folder")  # fmt: skip
    p.add_argument("--stats", help="also write the final statistics (JSON) to this file")
    p.add_argument("--quiet", action="store_true", help="no status line")
    p.add_argument("--yaml", help="the options as a YAML file (keys: the flags with underscores, e.g. deadline_ms)")
    p.add_argument("overrides", nargs="*", help="key=value options over the YAML (e.g. deadline_ms=50); flags given "
                   "on the command line win")  # fmt: skip
    return p


def check_arguments(args: argparse.Namespace) -> list[str]:
    """Every problem with the arguments, before anything is loaded."""
    problems = []
    if is_builtin(args.model):
        try:
            named, args.model = args.model, str(resolve_weights(args.model))
            log.info("using %s", describe_builtin(named))
        except FileNotFoundError as error:
            problems.append(str(error))
    elif not Path(args.model).exists():
        problems.append(f"model not found: {args.model}")
    for name in ("wait_for_source", "reconnect"):
        value = getattr(args, name)
        if value is not None and value < 0:
            problems.append(f"--{name.replace('_', '-')} must be >= 0, got {value}")
    for name in ("max_fps", "deadline_ms", "frames", "threads", "open_timeout", "rtsp_latency"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            problems.append(f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.sink and not args.sink.startswith(("display://", "rtp://", "appsrc")):
        sink, source = Path(args.sink).resolve(), Path(str(args.source)).resolve()
        if Path(str(args.source)).exists() and (sink == source or source in sink.parents):
            problems.append(f"the sink {args.sink} would write into the source {args.source}")
        overlap = overlap_problem(args.sink, [args.model], flag="--sink")
        if overlap:
            problems.append(overlap)
    for flag, target in (("--stats", args.stats), ("--frames-log", args.frames_log)):
        if target:
            problems.extend(output_problems(target, [args.source, args.model], overwrite=args.overwrite, kind="file",
                                            flag=flag))  # fmt: skip
    return problems


class Reporter:
    """Prints the stream's status line to stderr: in place once a second on a terminal, every 10 s in a log."""

    def __init__(self, stats: Any, quiet: bool) -> None:
        self.stats, self.quiet = stats, quiet
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="derain-stats", daemon=True)
        self.tty = sys.stderr.isatty()

    def _loop(self) -> None:  # in place each second on a terminal; a time-stamped line every 10 s in a log file
        period = 1.0 if self.tty else 10.0
        while not self.done.wait(period):
            if self.tty:
                print(self.stats.line(), end="\r", file=sys.stderr, flush=True)
            else:
                print(time.strftime("%H:%M:%S"), self.stats.line(), file=sys.stderr, flush=True)

    def __enter__(self) -> Reporter:
        if not self.quiet:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        if self.thread.is_alive():
            self.thread.join()
            if self.tty:
                print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    setup_logging(library_only=True)
    return run_main("derain-stream", lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    from derain.config import parse_with_yaml

    args = parse_with_yaml(parser(), argv)
    problems = check_arguments(args)
    if problems:
        raise UsageError(problems)
    from derain.runtime.backends.base import default_cpu_threads

    threads = args.threads or (default_cpu_threads() if args.device in ("auto", "cpu") else None)
    chosen = (("threads", threads), ("precision", args.precision), ("kernels", args.kernels))
    options = {key: value for key, value in chosen if value}
    received: list[int] = []
    running: list[Any] = []  # the stream, once there is one

    def on_signal(number: int, _frame: Any) -> None:
        received.append(number)
        for stream in running:  # stop() takes locks the interrupted main thread may hold: use a helper thread
            threading.Thread(target=stream.stop, name="derain-stop", daemon=True).start()

    previous = {number: signal.signal(number, on_signal) for number in (signal.SIGINT, signal.SIGTERM)}
    try:  # handlers before loading: a JIT compile can take a while
        return run(args, options, received, running)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def run(args: argparse.Namespace, options: dict[str, Any], received: list[int], running: list[Any]) -> int:
    """Open, load, stream, report; every expected failure is one line on stderr and exit status 2."""
    from derain.runtime import Derainer, open_sink, side_by_side
    from derain.runtime.sources import open_source

    sink = source = None
    try:
        source = open_source(args.source, args.open_timeout, args.rtsp_latency, wait=args.wait_for_source)
        derainer = Derainer(args.model, backend=args.backend, device=args.device, **options)  # before the sink:
        log.info("model: %s", derainer)  # a model that cannot be loaded (or run) leaves no output behind
        if source.size is not None and not received:
            log.info("warming up at %dx%d", *source.size)
            derainer(np.zeros((source.size[1], source.size[0], 3), np.uint8))  # tiles too, as live frames will
        sink = open_sink(args.sink, fps=source.fps or 30.0, overwrite=args.overwrite) if args.sink else None
        frames_log = FramesLog(args.frames_log) if args.frames_log else None
        stream = derainer.stream(source, open_timeout=args.open_timeout, reconnect=args.reconnect,
                                 lossless=args.lossless, deadline_ms=args.deadline_ms,
                                 deadline_action=args.deadline_action, max_fps=args.max_fps, max_frames=args.frames,
                                 on_drop=frames_log.write if frames_log else None)  # fmt: skip
        running.append(stream)
        if received:
            stream.stop()

        def compose(clean: Any, info: Any) -> Any:
            line = stream.stats.snapshot()
            caption = f"{line['fps_last_second']:.0f} fps  {info.latency_ms:.0f} ms  {info.action}"
            return side_by_side(info.rainy, clean, caption)

        try:
            with Reporter(stream.stats, args.quiet):
                stats = stream.run(sink, compose if args.side_by_side else None,
                                   frames_log.write if frames_log else None)  # fmt: skip
        finally:
            if frames_log is not None:
                frames_log.close()
        derainer.close()
    except (InputError, OSError) as error:  # a camera, stream or disk that fails while running: one line
        print(f"derain-stream: error: {one_line(error)}", file=sys.stderr)
        for opened in (sink, source):  # a video finalized, a camera released
            if opened is not None:
                try:
                    opened.close()
                except Exception as closing:  # noqa: BLE001 - already failing: say so, keep the first error
                    log.warning("while closing %s: %s", opened, closing)
        return EXIT_INPUT
    summary = {**stats.snapshot(), "model": str(args.model), "source": str(args.source), "sink": args.sink,
               "written": sink.frames if sink is not None else 0}  # fmt: skip
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.stats:
        atomic_write_text(args.stats, text + "\n")
    if signal.SIGINT in received:
        return 130
    return outcome(summary, stream.lossless)


class FramesLog:
    """`--frames-log`: one JSON line per frame (`FrameInfo.record()`), written as frames come, flushed each second
    (a crash loses at most a second of it)."""

    def __init__(self, path: str) -> None:
        self.handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        self.flushed = time.monotonic()
        self.lock = threading.Lock()  # dropped frames are told from the capture thread

    def write(self, info: Any) -> None:
        line = json.dumps(info.record()) + "\n"
        with self.lock:
            if self.handle.closed:
                return
            self.handle.write(line)
            if time.monotonic() - self.flushed >= 1.0:
                self.handle.flush()
                self.flushed = time.monotonic()

    def close(self) -> None:
        with self.lock:
            self.handle.close()


def outcome(summary: dict[str, Any], lossless: bool) -> int:
    """A run that de-rained none of the frames it read failed (2); a file or folder with frames skipped as
    unreadable is done in part (3, as derain-eval); otherwise 0. Says which on stderr."""
    skipped = summary.get("skipped_corrupt", 0)
    if (summary.get("captured", 0) or skipped) and not summary.get("emitted", 0):
        print(f"derain-stream: error: no frame came through ({skipped} unreadable or off the frame contract; the "
              "log names them)", file=sys.stderr)  # fmt: skip
        return EXIT_INPUT
    if skipped and lossless:
        print(f"derain-stream: {skipped} frame(s) could not be read and were skipped (the log names them)",
              file=sys.stderr)
        return EXIT_PARTIAL
    return 0


if __name__ == "__main__":
    sys.exit(main())
