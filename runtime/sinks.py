"""Frame sinks by URI: `display://0`, a video file (`.mp4`, `.avi`, `.mkv`), a folder of images,
`rtp://host:port[?codec=h264|vp8|jpeg]` or a GStreamer pipeline starting with appsrc (`gst:appsrc ! ...`; both
through GStreamer's Python bindings, or an OpenCV built with GStreamer), or a Python callable.

Sinks never replace what is there unasked: an existing video file or a non-empty folder is an error unless
`overwrite=True`. A video is written under a `.partial` name and renamed when closed, so a finished file is always
a complete, playable one.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np

from derain.cli import InputError
from derain.runtime import gst
from derain.runtime.sources import gstreamer_available

log = logging.getLogger(__name__)

VIDEO_CODECS = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


class SinkError(InputError, RuntimeError):
    """A sink that cannot be opened or written: no display, no GStreamer, an existing output, a full disk."""


class Sink:
    """Base class: `write(frame)` (uint8 BGR (H, W, 3)), `close()`; context manager. Sinks that keep time
    (`takes_timestamps`) take `write(frame, timestamp)`: the source's timestamp of the frame, in seconds."""

    takes_timestamps = False

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoSink(Sink):
    """A video file, opened at the first frame (its size); `<name>.partial<suffix>` until closed."""

    def __init__(self, path: Path, fps: float, overwrite: bool = False) -> None:
        super().__init__(str(path))
        if path.suffix.lower() not in VIDEO_CODECS:
            raise SinkError(f"video sink {path}: use one of {', '.join(VIDEO_CODECS)}")
        if path.exists() and not overwrite:
            raise SinkError(f"{path} exists; pass --overwrite to replace it")
        if not path.parent.is_dir():
            raise SinkError(f"folder of {path} does not exist")
        self.path, self.fps = path, fps
        self.partial = path.with_name(f"{path.stem}.partial{path.suffix}")
        self.writer: Any = None
        self.size: tuple[int, int] | None = None

    def write(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        if self.writer is None:
            fourcc = cv2.VideoWriter_fourcc(*VIDEO_CODECS[self.path.suffix.lower()])
            self.writer = cv2.VideoWriter(str(self.partial), fourcc, self.fps, (width, height))
            if not self.writer.isOpened():
                raise SinkError(f"cannot write video {self.partial} (codec {VIDEO_CODECS[self.path.suffix.lower()]})")
            self.size = (height, width)
        elif (height, width) != self.size:
            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            os.replace(self.partial, self.path)
            log.info("wrote %s (%d frames)", self.path, self.frames)


FRAME_NAME = re.compile(r"frame_\d{6,}\.png(\.tmp)?")


class FolderSink(Sink):
    """One PNG per frame, `frame_000000.png` upwards. With `overwrite`, the frames of an earlier run in the folder
    (`frame_NNNNNN.png`) are removed first, so the folder holds this run's frames only; other files are kept."""

    def __init__(self, path: Path, overwrite: bool = False) -> None:
        super().__init__(str(path))
        if path.exists() and not path.is_dir():
            raise SinkError(f"{path} is a file, not a folder")
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise SinkError(f"{path} is not empty; pass --overwrite to write into it")
        path.mkdir(parents=True, exist_ok=True)
        earlier = [p for p in path.glob("frame_*.png*") if FRAME_NAME.fullmatch(p.name)]
        for old in earlier:
            old.unlink()
        if earlier:
            log.info("%s: removed %d frames of an earlier run (--overwrite)", path, len(earlier))
        self.path = path

    def write(self, frame: np.ndarray) -> None:
        target = self.path / f"frame_{self.frames:06d}.png"
        ok, encoded = cv2.imencode(".png", frame)
        if not ok:
            raise SinkError(f"cannot encode frame {self.frames} as PNG")
        tmp = target.with_suffix(".png.tmp")
        encoded.tofile(tmp)
        os.replace(tmp, target)
        self.frames += 1


class DisplaySink(Sink):
    """An OpenCV window (needs an OpenCV with a GUI backend and a display)."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.window = f"derain-edge {uri}"
        gui = re.search(r"GUI:\s*(\S+)", cv2.getBuildInformation())
        if gui is None or gui.group(1).upper() == "NONE":
            raise SinkError(f"{uri}: this OpenCV has no GUI backend (opencv-python-headless): install opencv-python, "
                            "or write to a file")  # fmt: skip
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform == "linux":
            raise SinkError(f"{uri}: no display (DISPLAY is not set): write to a file or stream rtp:// instead")
        self.opened = False

    def write(self, frame: np.ndarray) -> None:
        if not self.opened:  # every GUI call on the writing (sink) thread: Qt and GTK need one thread
            cv2.namedWindow(self.window, cv2.WINDOW_NORMAL)
            self.opened = True
        cv2.imshow(self.window, frame)
        cv2.waitKey(1)
        self.frames += 1

    def close(self) -> None:
        if self.opened:
            cv2.destroyWindow(self.window)


class GStreamerSink(Sink):
    """A GStreamer pipeline from appsrc (`rtp://host:port` builds an H.264 RTP one)."""

    def __init__(self, uri: str, pipeline: str, fps: float) -> None:
        super().__init__(uri)
        if not gstreamer_available():
            raise SinkError(f"{uri} needs GStreamer: its Python bindings are not installed ({gst.INSTALL}) and this "
                            "OpenCV has none (pip's opencv-python never has it)")  # fmt: skip
        self.pipeline, self.fps = pipeline, fps
        self.writer: Any = None

    def write(self, frame: np.ndarray) -> None:
        if self.writer is None:
            height, width = frame.shape[:2]
            self.writer = cv2.VideoWriter(self.pipeline, cv2.CAP_GSTREAMER, 0, self.fps, (width, height))
            if not self.writer.isOpened():
                raise SinkError(f"GStreamer refused the pipeline {self.pipeline!r}")
        self.writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()


class GstSink(Sink):
    """Frames pushed into a pipeline that starts with appsrc (`rest` is what follows it), with PTS = frame / fps
    (or the frame's own timestamp when `write` is given one). Errors of the pipeline surface at the next write."""

    takes_timestamps = True

    def __init__(self, uri: str, rest: str, fps: float) -> None:
        super().__init__(uri)
        self.first_pts: float | None = None
        self.last_since: float | None = None
        self.failed = False
        try:
            gst.gst()
            missing = gst.missing_elements(rest)
        except gst.GstUnavailable as error:
            raise SinkError(str(error)) from None
        if missing:
            raise SinkError(f"{uri}: this GStreamer lacks {', '.join(missing)}")
        self.rest, self.fps = rest, fps
        self.pipeline: Any = None
        self.appsrc: Any = None
        self.size: tuple[int, int] | None = None

    def _start(self, height: int, width: int) -> None:
        Gst = gst.gst().Gst
        rate = max(1, round(self.fps * 1000))
        caps = f"video/x-raw,format=BGR,width={width},height={height},framerate={rate}/1000"
        line = f'appsrc name=derain_src is-live=true format=time do-timestamp=false caps="{caps}" ! {self.rest}'
        try:
            self.pipeline = gst.launch(line, self.uri)
        except gst.GstUnavailable as error:
            raise SinkError(str(error)) from None
        self.appsrc = self.pipeline.get_by_name("derain_src")
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            detail = gst.drain_bus(self.pipeline) or "state change failed"
            self.pipeline.set_state(Gst.State.NULL)
            raise SinkError(f"cannot start {self.uri}: {detail}")
        self.size = (height, width)

    def write(self, frame: np.ndarray, pts: float | None = None) -> None:
        Gst = gst.gst().Gst
        height, width = frame.shape[:2]
        if self.pipeline is None:
            self._start(height, width)
        elif (height, width) != self.size:
            import cv2

            frame = cv2.resize(frame, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        error = gst.drain_bus(self.pipeline)
        if error:
            self.failed = True
            raise SinkError(f"{self.uri}: {error}")
        buffer = Gst.Buffer.new_wrapped(np.ascontiguousarray(frame).tobytes())
        if pts is not None and self.first_pts is None:
            self.first_pts = pts
        # the source's timestamps, from 0 (a camera's clock may start anywhere), else frame / fps; a source that
        # starts its clock again (reopened) is rebased, so that what leaves keeps increasing
        since = pts - self.first_pts if pts is not None and self.first_pts is not None else self.frames / self.fps
        if self.last_since is not None and since <= self.last_since:
            step = 1.0 / self.fps
            if pts is not None:
                self.first_pts = pts - (self.last_since + step)
            since = self.last_since + step
        self.last_since = since
        buffer.pts = int(round(max(since, 0.0) * gst.NS))
        buffer.duration = int(gst.NS / self.fps)
        result = self.appsrc.emit("push-buffer", buffer)
        if result != Gst.FlowReturn.OK:
            self.failed = True
            raise SinkError(f"{self.uri}: the pipeline refused a frame ({result.value_nick})")
        self.frames += 1

    def close(self, timeout: float = 5.0) -> None:
        """End of stream, wait (at most `timeout` s) until it has gone through (a file finalized), stop."""
        if self.pipeline is None:
            return
        Gst = gst.gst().Gst
        if self.failed:  # nothing to finish: the error was said when it came
            self.pipeline.set_state(Gst.State.NULL)
            self.pipeline = None
            return
        self.appsrc.emit("end-of-stream")
        message = self.pipeline.get_bus().timed_pop_filtered(
            int(timeout * gst.NS), Gst.MessageType.EOS | Gst.MessageType.ERROR)
        self.pipeline.set_state(Gst.State.NULL)
        self.pipeline = None
        if message is not None and message.type == Gst.MessageType.ERROR:
            error, _ = message.parse_error()
            raise SinkError(f"{self.uri}: {error.message}")


class CallbackSink(Sink):
    def __init__(self, callback: Callable[[np.ndarray], Any]) -> None:
        super().__init__(getattr(callback, "__name__", "callback"))
        self.callback = callback

    def write(self, frame: np.ndarray) -> None:
        self.callback(frame)
        self.frames += 1


def rtp_pipeline(host: str, port: int) -> str:
    return (
        "appsrc ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast "
        f"bitrate=4000 ! rtph264pay config-interval=1 pt=96 ! udpsink host={host} port={port} sync=false"
    )


def open_sink(target: str | Callable[[np.ndarray], Any], fps: float = 30.0, overwrite: bool = False) -> Sink:
    """The sink `target` names (see the module docstring). `rtp://` and appsrc pipelines go through GStreamer's
    own Python bindings where they are installed, else through an OpenCV built with GStreamer."""
    if callable(target):
        return CallbackSink(target)
    text = str(target).strip()
    if text.startswith("display://"):
        return DisplaySink(text)
    if text.startswith("rtp://"):
        parsed = urlparse(text)
        codec = parse_qs(parsed.query).get("codec", [None])[-1]
        try:
            host, port = parsed.hostname or "127.0.0.1", parsed.port
        except ValueError:
            port = None
        if port is None:
            raise SinkError(f"{text}: expected rtp://HOST:PORT[?codec=h264|vp8|jpeg]")
        if gst.available():
            try:
                sender, receiver = gst.rtp_sender(host, port, codec)
            except gst.GstUnavailable as error:
                raise SinkError(str(error)) from None
            encoder = next(part for part in sender.split(" ! ") if "enc" in part.split()[0]).split()[0]
            log.info("%s: sending with %s; receive with: gst-launch-1.0 %s", text, encoder, receiver)
            return GstSink(text, sender, fps)
        return GStreamerSink(text, rtp_pipeline(host, port), fps)
    pipeline = text[len("gst:") :].strip() if text.startswith("gst:") else text
    if pipeline.startswith("appsrc") and " ! " in pipeline:
        if gst.available():
            return GstSink(text, pipeline.split("!", 1)[1].strip(), fps)
        return GStreamerSink(text, pipeline, fps)
    path = Path(text[len("file://") :] if text.startswith("file://") else text)
    if path.suffix:
        if path.suffix.lower() in VIDEO_CODECS:
            return VideoSink(path, fps, overwrite)
        raise SinkError(f"unknown sink {text!r}: a video file ({', '.join(VIDEO_CODECS)}), a folder, display://0, "
                        "rtp://HOST:PORT or an appsrc pipeline")  # fmt: skip
    return FolderSink(path, overwrite)


def side_by_side(rainy: np.ndarray, clean: np.ndarray, caption: str = "") -> np.ndarray:
    """rainy | de-rained in one frame, labelled, with `caption` (fps/latency) along the bottom."""
    if rainy.shape != clean.shape:
        rainy = cv2.resize(rainy, (clean.shape[1], clean.shape[0]), interpolation=cv2.INTER_AREA)
    frame = np.concatenate([rainy, clean], axis=1)
    scale = max(frame.shape[0] / 720, 0.4)
    thickness = max(int(round(2 * scale)), 1)

    def label(text: str, x: int, y: int) -> None:
        cv2.putText(frame, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (0, 0, 0), thickness + 2, cv2.LINE_AA)
        cv2.putText(frame, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)  # fmt: skip

    margin = int(10 * scale) + 4
    label("rainy", margin, int(30 * scale) + 4)
    label("de-rained", clean.shape[1] + margin, int(30 * scale) + 4)
    if caption:
        label(caption, margin, frame.shape[0] - margin)
    return frame
