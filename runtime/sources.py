"""Frame sources by URI, jetson-utils' convention.

| URI | source |
|---|---|
| `csi://0` | Jetson CSI camera (nvarguscamerasrc) |
| `v4l2:///dev/video0`, `0` | USB camera (V4L2, one-frame buffer) |
| `rtsp://host/path` | network stream (rtspsrc, `rtsp_latency_ms` (200), drop-on-latency; without GStreamer FFmpeg) |
| `file.mp4`, `file://file.mp4` | video file |
| `folder/`, `image.png` | images, sorted by name |
| `gst:PIPELINE`, `... ! appsink` | a GStreamer pipeline; BGR appsink appended unless it ends in one |
| `synthetic://rain100H?size=1280x720&fps=30&frames=N&seed=0` | the built-in rainy video, paced at its fps |

GStreamer pipelines (`gst:`, `csi://`, RTSP) run through GStreamer's own Python bindings where they are installed
(`derain.runtime.gst`), else through an OpenCV built with GStreamer (pip's has none). Frames carry the source's own
timestamp where it has one (GStreamer PTS, a file's presentation time, the V4L2 driver's capture time), with the
clock it is on (`Captured.clock`). Every source opens within a timeout (a stream that never answers is an error,
not a hang), reads one frame at a time with a status (OK, TIMEOUT, EOS, ERROR, CORRUPT), and can be reopened after
a failure.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from derain.cli import InputError
from derain.runtime import gst

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".ts", ".h264", ".h265")
RTSP_LATENCY_MS = 200


class SourceError(InputError, RuntimeError):
    """A source that cannot be opened or read: missing file, no such camera, unreachable stream, no GStreamer."""


class SourceRefused(SourceError):
    """A source that can never open here, however long one waits (an unknown scheme, a missing GStreamer element,
    bad options): `open_source(wait=...)` does not retry it."""


class Status(enum.Enum):
    OK = "ok"
    TIMEOUT = "timeout"  # no frame in time; a live source is reopened
    EOS = "eos"  # end of a file or folder
    ERROR = "error"  # the device or stream failed; a live source is reopened
    CORRUPT = "corrupt"  # a frame that could not be decoded; skipped and counted


CLOCKS = ("pipeline", "container", "camera", "stream", "host")


@dataclass
class Captured:
    """One read: its status, the frame, when it arrived (`timestamp`, time.monotonic()), and the source's own
    timestamp of the frame (`pts`, seconds) with the clock it is on: "pipeline" (a GStreamer buffer's PTS),
    "container" (a video file's presentation time), "camera" (the driver's capture time), "stream" (frame index /
    fps of the built-in video), or "host" (none: `pts` is the arrival time)."""

    status: Status
    frame: np.ndarray | None = None
    timestamp: float = 0.0  # time.monotonic() when the frame was taken
    detail: str = ""
    pts: float | None = None
    clock: str = "host"

    def __post_init__(self) -> None:
        if self.pts is None:
            self.pts, self.clock = self.timestamp, "host"


def gstreamer_available() -> bool:
    """Whether this OpenCV was built with GStreamer (pip's opencv-python is not)."""
    match = re.search(r"GStreamer:\s*(\w+)", cv2.getBuildInformation())
    return bool(match and match.group(1).upper() == "YES")


def _need_gstreamer(uri: str) -> None:
    if not gstreamer_available():
        raise SourceRefused(
            f"{uri} needs GStreamer: its Python bindings are not installed ({gst.INSTALL}) and this OpenCV has none "
            "(pip's opencv-python never has it; JetPack's python3-opencv does, in a venv with --system-site-packages)"
        )


def csi_pipeline(sensor: int, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """The Jetson CSI capture pipeline: NVMM NV12 -> BGRx on the VIC -> BGR, newest frame only."""
    return (
        f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={width},height={height},"
        f"format=NV12,framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
        "video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def rtsp_pipeline(uri: str, latency_ms: int = RTSP_LATENCY_MS) -> str:
    return (
        f"rtspsrc location={uri} latency={latency_ms} drop-on-latency=true ! decodebin ! videoconvert ! "
        "video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
    )


class Source:
    """Base class: `open(timeout)`, `read()` -> Captured, `close()`; `live` sources drop stale frames and are
    reopened after failures, file-like ones end at EOS."""

    live = False
    fps: float | None = None
    size: tuple[int, int] | None = None  # (width, height) when known before the first frame

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def open(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def read(self) -> Captured:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def reopen(self, timeout: float = 10.0) -> None:
        self.close()
        self.open(timeout)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"


class CaptureSource(Source):
    """Anything cv2.VideoCapture opens: a camera, a file, an RTSP stream, a GStreamer pipeline."""

    def __init__(self, uri: str, target: Any, api: int, live: bool, buffer_size: int | None = None) -> None:
        super().__init__(uri)
        self.target, self.api, self.live, self.buffer_size = target, api, live, buffer_size
        self.capture: Any = None
        self.failures = 0  # consecutive failed reads of a file

    def open(self, timeout: float = 10.0) -> None:
        """Open in a helper thread and wait at most `timeout` s: some backends block forever on a dead stream."""
        milliseconds = int(timeout * 1000)
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds]
        result: dict[str, Any] = {}
        lock = threading.Lock()

        def attempt() -> None:
            try:
                capture = cv2.VideoCapture(self.target, self.api, params)
            except cv2.error as error:
                result["error"] = error
                return
            with lock:
                if result.get("abandoned"):  # opened after the caller gave up: free the device for the next try
                    capture.release()
                else:
                    result["capture"] = capture

        opener = threading.Thread(target=attempt, name=f"open {self.uri}", daemon=True)
        opener.start()
        opener.join(timeout)
        with lock:
            if "capture" not in result and "error" not in result:
                result["abandoned"] = True
                raise SourceError(f"{self.uri} did not open within {timeout:.1f} s (no answer from the device or "
                                  "stream)")  # fmt: skip
        capture = result.get("capture")
        if capture is None or not capture.isOpened():
            detail = f" ({result['error']})" if "error" in result else ""
            raise SourceError(f"cannot open {self.uri}{detail}")
        if self.buffer_size:
            capture.set(cv2.CAP_PROP_BUFFERSIZE, self.buffer_size)
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None
        width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (width, height) if width > 0 and height > 0 else None
        self.capture = capture

    def read(self) -> Captured:
        if self.capture is None:
            return Captured(Status.ERROR, detail="not open")
        ok, frame = self.capture.read()
        stamp = time.monotonic()
        if ok and frame is not None:
            self.failures = 0
            position = self.capture.get(cv2.CAP_PROP_POS_MSEC)  # the frame's time in the file, or the driver's
            if self.api == cv2.CAP_FFMPEG and not self.live:
                return Captured(Status.OK, frame, stamp, pts=position / 1000, clock="container")
            if self.api == cv2.CAP_V4L2 and position > 0:
                return Captured(Status.OK, frame, stamp, pts=position / 1000, clock="camera")
            return Captured(Status.OK, frame, stamp)
        if not self.live:
            position = self.capture.get(cv2.CAP_PROP_POS_FRAMES)
            total = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
            self.failures += 1
            # the end, or a container whose frame count overstates it (.ts, .mkv, truncated files): stop, no loop
            if total <= 0 or position >= total - 1 or self.failures >= 5 or not self.capture.grab():
                return Captured(Status.EOS, timestamp=stamp, detail=f"ended at frame {int(position)} of {int(total)}")
            return Captured(Status.CORRUPT, timestamp=stamp, detail=f"frame {int(position)} does not decode")
        return Captured(Status.ERROR, timestamp=stamp, detail="the device or stream returned no frame")

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def image_to_bgr8(image: np.ndarray) -> tuple[np.ndarray | None, str]:
    """A decoded image file as a uint8 BGR frame, and what was converted ("" when nothing was): grey -> BGR, BGRA ->
    BGR (alpha dropped), 16-bit -> 8-bit (x 255 / 65535, rounded). (None, why) for what has no single reading
    (float images, other channel counts)."""
    notes = []
    if image.dtype == np.uint16:
        image = np.rint(image.astype(np.float32) * np.float32(255 / 65535)).astype(np.uint8)
        notes.append("16-bit -> 8-bit")
    elif image.dtype != np.uint8:
        return None, f"{image.dtype} pixels have no single 8-bit reading (save the frames as 8- or 16-bit)"
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        image = cv2.cvtColor(image.reshape(image.shape[:2]), cv2.COLOR_GRAY2BGR)
        notes.append("grey -> BGR")
    elif channels == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        notes.append("alpha dropped")
    elif channels != 3:
        return None, f"{channels} channels (expected grey, BGR or BGRA)"
    return np.ascontiguousarray(image), ", ".join(notes)


class GstSource(Source):
    """Frames of a GStreamer pipeline from its (last) appsink; timestamps are the buffers' PTS ("pipeline" clock).

    Live pipelines (cameras, network streams: their state change answers NO_PREROLL) keep the newest buffer only
    (appsink max-buffers=1 drop=true) and are reopened after failures; others (files) end at EOS and lose no frame.
    """

    def __init__(self, uri: str, pipeline: str, live: bool | None = None) -> None:
        super().__init__(uri)
        self.launch_line = gst.with_appsink(pipeline)
        self.forced_live = live
        self.pipeline: Any = None
        self.appsink: Any = None
        self.pending: Any = None  # a live pipeline's first sample, pulled when it opened
        self.live = bool(live)

    def open(self, timeout: float = 10.0) -> None:
        try:
            Gst = gst.gst().Gst
            pipeline = gst.launch(self.launch_line, self.uri)
        except gst.GstUnavailable as error:
            raise SourceRefused(str(error)) from None
        sinks = [e for e in gst.elements(pipeline) if e.get_factory() and e.get_factory().get_name() == "appsink"]
        if not sinks:
            raise SourceRefused(f"{self.uri}: the pipeline has no appsink")
        appsink = sinks[-1]
        change = pipeline.set_state(Gst.State.PLAYING)
        live = change == Gst.StateChangeReturn.NO_PREROLL
        if change == Gst.StateChangeReturn.FAILURE:
            detail = gst.drain_bus(pipeline) or "state change failed"
            pipeline.set_state(Gst.State.NULL)
            raise SourceError(f"cannot open {self.uri}: {detail}")
        if not live:  # wait for preroll: a pipeline that cannot start says why within the timeout
            change, _, _ = pipeline.get_state(int(timeout * gst.NS))
            if change == Gst.StateChangeReturn.FAILURE or change == Gst.StateChangeReturn.ASYNC:
                detail = gst.drain_bus(pipeline) or f"did not start within {timeout:.1f} s"
                pipeline.set_state(Gst.State.NULL)
                raise SourceError(f"cannot open {self.uri}: {detail}")
            live = change == Gst.StateChangeReturn.NO_PREROLL or _has_live_source(pipeline)
        self.live = live if self.forced_live is None else self.forced_live
        if self.live:
            appsink.set_property("max-buffers", 1)
            appsink.set_property("drop", True)
        appsink.set_property("sync", False)
        self.pending = None
        if live:  # a live pipeline "starts" before its device answers: it is open when its first frame is here
            self.pending = appsink.try_pull_sample(int(timeout * gst.NS))
            if self.pending is None:
                detail = gst.drain_bus(pipeline) or f"no frame within {timeout:.1f} s"
                pipeline.set_state(Gst.State.NULL)
                raise SourceError(f"cannot open {self.uri}: {detail}")
        self.pipeline, self.appsink, self.timeout = pipeline, appsink, timeout
        pad = appsink.get_static_pad("sink")
        caps = self.pending.get_caps() if self.pending is not None else pad.get_current_caps()
        if caps is not None:
            structure = caps.get_structure(0)
            ok_w, width = structure.get_int("width")
            ok_h, height = structure.get_int("height")
            self.size = (width, height) if ok_w and ok_h else None
            ok_f, num, den = structure.get_fraction("framerate")
            self.fps = num / den if ok_f and num > 0 and den > 0 else None

    def read(self) -> Captured:
        if self.pipeline is None:
            return Captured(Status.ERROR, detail="not open")
        sample, self.pending = self.pending or self.appsink.try_pull_sample(int(self.timeout * gst.NS)), None
        stamp = time.monotonic()
        error = gst.drain_bus(self.pipeline)  # every read: nothing piles up, and an error is seen when it comes
        if error:
            return Captured(Status.ERROR, timestamp=stamp, detail=error)
        if sample is None:
            if self.appsink.is_eos():
                return Captured(Status.EOS, timestamp=stamp)
            return Captured(Status.TIMEOUT, timestamp=stamp, detail=f"no frame within {self.timeout:.1f} s")
        frame, pts, why = gst.frame_from_sample(sample)
        if frame is None:
            return Captured(Status.CORRUPT, timestamp=stamp, detail=why)
        return Captured(Status.OK, frame, stamp, pts=pts, clock="pipeline")

    def close(self) -> None:
        if self.pipeline is not None:
            self.pipeline.set_state(gst.gst().Gst.State.NULL)
            self.pipeline = self.appsink = self.pending = None



def _has_live_source(pipeline: Any) -> bool:
    """Whether a pipeline holds a live source element (a camera, a network source; inside bins too): a state change
    that has already completed no longer answers NO_PREROLL, and a pipeline's latency query says live whenever its
    sink syncs."""
    GstBase = gst.gst().GstBase
    return any(isinstance(e, GstBase.BaseSrc) and bool(e.is_live) for e in gst.elements(pipeline))  # its field


class FolderSource(Source):
    """Images of a folder (or one image), sorted by name, as uint8 BGR (grey, BGRA and 16-bit files converted, said
    once in the log); undecodable files are CORRUPT and skipped."""

    def __init__(self, uri: str, paths: list[Path]) -> None:
        super().__init__(uri)
        self.paths = paths
        self.position = 0
        self.conversions: set[str] = set()

    def open(self, timeout: float = 10.0) -> None:
        if not self.paths:
            raise SourceError(f"{self.uri} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        self.position = 0

    def read(self) -> Captured:
        if self.position >= len(self.paths):
            return Captured(Status.EOS, timestamp=time.monotonic())
        path = self.paths[self.position]
        self.position += 1
        data = np.fromfile(path, dtype=np.uint8)
        frame = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
        if frame is None:
            return Captured(Status.CORRUPT, timestamp=time.monotonic(), detail=f"{path.name} does not decode")
        frame, note = image_to_bgr8(frame)
        if frame is None:
            return Captured(Status.CORRUPT, timestamp=time.monotonic(), detail=f"{path.name}: {note}")
        if note and note not in self.conversions:
            self.conversions.add(note)
            log.info("%s: converting %s frames (%s first)", self.uri, note, path.name)
        return Captured(Status.OK, frame, time.monotonic(), detail=path.name)


class SyntheticSource(Source):
    """The built-in rainy video (`derain.data.video`), delivered at its frame rate like a camera (`live`), or as
    fast as it renders with `pace=false`."""

    def __init__(self, uri: str, domain: str | None, size: tuple[int, int], fps: float, frames: int | None,
                 seed: int, pace: bool) -> None:  # fmt: skip
        super().__init__(uri)
        self.domain, self.size, self.fps, self.frames, self.seed, self.live = domain, size, fps, frames, seed, pace
        self.video: Any = None
        self.index = 0
        self.started = 0.0
        self.clean: np.ndarray | None = None  # the clean frame of the last read, for measuring

    def open(self, timeout: float = 10.0) -> None:
        from derain.data.video import SyntheticRainVideo  # torch: only when this source is used

        width, height = self.size
        try:
            self.video = SyntheticRainVideo(width, height, self.frames, self.fps, seed=self.seed, domain=self.domain)
        except (KeyError, ValueError) as error:
            raise SourceError(f"{self.uri}: {error}") from None
        self.started = time.monotonic()

    def read(self) -> Captured:
        if self.frames is not None and self.index >= self.frames:
            return Captured(Status.EOS, timestamp=time.monotonic())
        if self.live:  # a camera delivers frame i at start + i / fps, whatever the consumer does
            due = self.started + self.index / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        frame = self.video.frame(self.index)
        self.index += 1
        self.clean = frame.clean
        return Captured(Status.OK, frame.rainy, time.monotonic(), detail=str(frame.index), pts=frame.index / self.fps,
                        clock="stream")  # fmt: skip


def _synthetic(uri: str) -> SyntheticSource:
    parsed = urlparse(uri)
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    known = {"size", "fps", "frames", "seed", "pace"}
    unknown = sorted(set(query) - known)
    if unknown:
        raise SourceRefused(f"{uri}: unknown option(s) {unknown}; known: {sorted(known)}")
    try:
        width, height = (int(side) for side in query.get("size", "1280x720").lower().split("x"))
        fps = float(query.get("fps", 30))
        frames = int(query["frames"]) if "frames" in query else None
        seed = int(query.get("seed", 0))
    except ValueError:
        raise SourceError(f"{uri}: size is WIDTHxHEIGHT, fps a number, frames and seed integers") from None
    if fps <= 0 or (frames is not None and frames <= 0):
        raise SourceError(f"{uri}: fps and frames must be positive")
    domain = parsed.netloc or None
    if domain is not None:
        from derain.data.rain import RAIN_DOMAINS

        if domain not in RAIN_DOMAINS and domain != "default":
            raise SourceError(f"{uri}: unknown rain domain {domain!r}; known: default, {', '.join(RAIN_DOMAINS)}")
    pace = query.get("pace", "true").lower() not in ("0", "false", "no")
    return SyntheticSource(uri, None if domain == "default" else domain, (width, height), fps, frames, seed, pace)


def open_source(uri: str | int, timeout: float = 10.0, rtsp_latency_ms: int = RTSP_LATENCY_MS,
                wait: float = 0.0) -> Source:  # fmt: skip
    """Parse `uri` (see the module docstring), open it within `timeout` s, and return it. `wait` > 0: a source that
    is not up yet (a camera still booting, a stream not yet published) is tried again, with backoff, until `wait`
    seconds have passed (a device file or folder that does not exist yet included); the last failure is raised
    then."""
    deadline, delay, attempt = time.monotonic() + wait, 0.25, 1
    while True:
        try:
            source = parse_source(uri, rtsp_latency_ms)
            source.open(timeout)
            break
        except SourceError as error:
            left = deadline - time.monotonic()
            if left <= 0 or isinstance(error, SourceRefused):
                raise
            log.warning("%s is not up yet (%s); trying again in %.2f s (attempt %d, %.0f s left)", uri, error,
                        min(delay, left), attempt, left)  # fmt: skip
            time.sleep(min(delay, left))
            delay, attempt = min(delay * 2, 5.0), attempt + 1
    log.info("source %s: %s%s", uri, type(source).__name__, f" at {source.fps:g} fps" if source.fps else "")
    return source


def parse_source(uri: str | int, rtsp_latency_ms: int = RTSP_LATENCY_MS) -> Source:
    """The source a URI names, not yet opened; a clear SourceError for URIs that cannot work here. GStreamer
    pipelines (`gst:`, `csi://`, RTSP) go through GStreamer's Python bindings where they are installed, else through
    an OpenCV built with GStreamer."""
    text = str(uri).strip()
    if text.startswith("synthetic://"):
        return _synthetic(text)
    if text.startswith("gst:") or (" ! " in text and not Path(text).exists()):
        pipeline = text[len("gst:") :].strip() if text.startswith("gst:") else text
        if not pipeline:
            raise SourceRefused("gst: needs a pipeline, e.g. gst:videotestsrc ! videoconvert")
        if gst.available():
            return GstSource(text, pipeline)
        _need_gstreamer(text)
        return CaptureSource(text, gst.with_appsink(pipeline), cv2.CAP_GSTREAMER, live=True)
    if text.startswith("csi://"):
        sensor = text[len("csi://") :] or "0"
        if not sensor.isdigit():
            raise SourceRefused(f"{text}: expected csi://N (the sensor id)")
        if gst.available():
            return GstSource(text, csi_pipeline(int(sensor)), live=True)
        _need_gstreamer(text)
        return CaptureSource(text, csi_pipeline(int(sensor)), cv2.CAP_GSTREAMER, live=True)
    if text.isdigit() or text.startswith("v4l2://"):
        device = int(text) if text.isdigit() else text[len("v4l2://") :]
        if isinstance(device, str) and not Path(device).exists():
            raise SourceError(f"camera {device} not found (no such device; list them with v4l2-ctl --list-devices)")
        return CaptureSource(text, device, cv2.CAP_V4L2, live=True, buffer_size=1)
    if text.startswith(("rtsp://", "rtsps://")):
        if gst.available():
            return GstSource(text, rtsp_pipeline(text, rtsp_latency_ms), live=True)
        if gstreamer_available():
            return CaptureSource(text, rtsp_pipeline(text, rtsp_latency_ms), cv2.CAP_GSTREAMER, live=True)
        log.info("%s: no GStreamer here, reading through FFmpeg (its own buffering; --rtsp-latency does not apply)",
                 text)  # fmt: skip
        return CaptureSource(text, text, cv2.CAP_FFMPEG, live=True, buffer_size=1)
    if re.match(r"^[a-z][a-z0-9+.-]*://", text) and not text.startswith("file://"):
        raise SourceRefused(
            f"unknown source scheme in {text!r}; known: csi://, v4l2://, rtsp://, file://, synthetic://, a camera "
            "index, a file, a folder, or a GStreamer pipeline"
        )
    path = Path(text[len("file://") :] if text.startswith("file://") else text)
    if path.is_dir():
        return FolderSource(text, sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
    if not path.exists():
        raise SourceError(f"source not found: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return FolderSource(text, [path])
    return CaptureSource(text, str(path), cv2.CAP_FFMPEG, live=False)
