"""GStreamer through its own Python bindings (PyGObject), not through OpenCV.

pip's OpenCV has no GStreamer, so `csi://`, `rtp://` out and `gst:` pipelines go through `gi` here: Debian's and
JetPack's `python3-gi` / `python3-gst-1.0` (in a venv, their dist-packages folder is appended to `sys.path`, after
the venv's own packages). What a pipeline needs and this machine lacks is named with its package, in one line.

- `derain.runtime.sources.GstSource`: any pipeline (`gst:videotestsrc ! ...`, the CSI camera, RTSP with a
  latency), ending in an appsink that hands over BGR frames with the buffer's PTS (pipeline time) as timestamp;
- `derain.runtime.sinks.GstSink`: frames pushed into `appsrc ! ...` (`rtp://HOST:PORT` builds an RTP sender with
  the best encoder there is: nvv4l2h264enc, x264enc, vp8enc, jpegenc);
- `derain.runtime.gst_element`: the `derain` element itself.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from derain.cli import InputError

log = logging.getLogger(__name__)

SYSTEM_PACKAGES = ("/usr/lib/python3/dist-packages",)  # Debian / Ubuntu / JetPack's python3-gi
INSTALL = ("sudo apt-get install python3-gi python3-gst-1.0 gstreamer1.0-tools gstreamer1.0-plugins-base "
           "gstreamer1.0-plugins-good")  # fmt: skip
# where an element comes from, for the one-line message when it is missing
ELEMENT_PACKAGES = {
    "nvarguscamerasrc": "JetPack's nvidia-l4t-gstreamer (a Jetson with a CSI camera)",
    "nvvidconv": "JetPack's nvidia-l4t-gstreamer",
    "nvv4l2h264enc": "JetPack's nvidia-l4t-gstreamer",
    "nvv4l2decoder": "JetPack's nvidia-l4t-gstreamer",
    "x264enc": "gstreamer1.0-plugins-ugly",
    "avdec_h264": "gstreamer1.0-libav",
    **dict.fromkeys(("vp8enc", "vp8dec", "jpegenc", "jpegdec", "rtspsrc", "rtph264pay", "rtph264depay", "rtpvp8pay",
                     "rtpvp8depay", "rtpjpegpay", "rtpjpegdepay", "udpsink", "udpsrc", "rtpjitterbuffer", "avimux",
                     "matroskamux", "qtdemux", "matroskademux", "v4l2src"), "gstreamer1.0-plugins-good"),
    **dict.fromkeys(("videoconvert", "videoscale", "videotestsrc", "appsrc", "appsink", "decodebin", "uridecodebin",
                     "videorate", "playbin"), "gstreamer1.0-plugins-base"),
    **dict.fromkeys(("fakesink", "queue", "filesrc", "filesink", "identity", "capsfilter", "tee"),
                    "gstreamer1.0-tools (core elements)"),
}  # fmt: skip
NS = 1_000_000_000


class GstUnavailable(InputError, RuntimeError):
    """No GStreamer Python bindings, or an element a pipeline names is not installed."""


_gst: SimpleNamespace | None = None
_lock = threading.Lock()


def gst() -> SimpleNamespace:
    """Gst, GstBase, GstVideo, GstApp, GLib and GObject, initialized once; GstUnavailable with the packages to
    install when the bindings are missing."""
    global _gst
    with _lock:
        if _gst is not None:
            return _gst
        try:
            import gi
        except ImportError:
            for folder in SYSTEM_PACKAGES:
                if Path(folder, "gi").is_dir() and folder not in sys.path:
                    sys.path.append(folder)  # after the venv's packages: they win where both have one
            try:
                import gi
            except ImportError:
                raise GstUnavailable(f"GStreamer's Python bindings (gi) are not installed: {INSTALL}") from None
        try:
            for name in ("Gst", "GstBase", "GstVideo", "GstApp"):
                gi.require_version(name, "1.0")
            from gi.repository import GLib, GObject, Gst, GstApp, GstBase, GstVideo
        except (ValueError, ImportError) as error:
            raise GstUnavailable(f"GStreamer's typelibs are missing ({error}): {INSTALL}") from None
        Gst.init(None)
        _gst = SimpleNamespace(Gst=Gst, GstBase=GstBase, GstVideo=GstVideo, GstApp=GstApp, GLib=GLib, GObject=GObject)
        return _gst


def available() -> bool:
    try:
        gst()
    except GstUnavailable:
        return False
    return True


def missing_elements(pipeline: str) -> list[str]:
    """Element names of a launch line that this GStreamer does not have, each with the package that brings it."""
    Gst = gst().Gst
    names = re.findall(r"(?:^|!)\s*([A-Za-z0-9_-]+)(?=\s|!|$)", pipeline)
    missing = []
    for name in dict.fromkeys(names):
        if "/" in name or Gst.ElementFactory.find(name) is not None:
            continue
        missing.append(f"{name} ({ELEMENT_PACKAGES.get(name, 'a GStreamer plugin package')})")
    return missing


def launch(pipeline: str, what: str) -> Any:
    """`Gst.parse_launch` with one-line errors naming missing elements and their packages."""
    Gst, GLib = gst().Gst, gst().GLib
    missing = missing_elements(pipeline)
    if missing:
        raise GstUnavailable(f"{what}: this GStreamer lacks {', '.join(missing)}")
    try:
        return Gst.parse_launch(pipeline)
    except GLib.Error as error:
        raise GstUnavailable(f"{what}: GStreamer refused the pipeline {pipeline!r}: {error.message}") from None


def drain_bus(pipeline: Any) -> str | None:
    """Empty a pipeline's bus (messages nobody reads would pile up: an element may post one a frame); the first
    error on it, as one line, or None."""
    Gst = gst().Gst
    bus, first = pipeline.get_bus(), None
    while (message := bus.pop()) is not None:
        if message.type == Gst.MessageType.ERROR and first is None:
            error, debug = message.parse_error()
            origin = message.src.get_name() if message.src is not None else "pipeline"
            first = f"{origin}: {error.message}" + (f" ({debug.splitlines()[0]})" if debug else "")
    return first


def frame_from_sample(sample: Any) -> tuple[np.ndarray | None, float | None, str]:
    """A BGR appsink sample as a contiguous (H, W, 3) uint8 copy (the buffer goes back to its pool), its PTS in
    seconds (None when the buffer has none), and why not when it is no BGR frame."""
    Gst, GstVideo = gst().Gst, gst().GstVideo
    caps = sample.get_caps()
    info = GstVideo.VideoInfo.new_from_caps(caps) if caps is not None else None
    if info is None or info.finfo.format != GstVideo.VideoFormat.BGR:
        return None, None, f"expected BGR frames, the appsink gave {caps.to_string() if caps else 'no caps'}"
    buffer = sample.get_buffer()
    ok, mapped = buffer.map(Gst.MapFlags.READ)
    if not ok:
        return None, None, "the buffer could not be mapped"
    try:
        stride = info.stride[0]
        rows = np.ndarray((info.height, stride), np.uint8, mapped.data, info.offset[0])
        frame = rows[:, : info.width * 3].copy().reshape(info.height, info.width, 3)  # a copy: unmapped below
    finally:
        buffer.unmap(mapped)
    pts = None if buffer.pts == Gst.CLOCK_TIME_NONE else buffer.pts / NS
    return frame, pts, ""


def with_appsink(pipeline: str) -> str:
    """A launch line that ends in an appsink handing over BGR frames: the user's own appsink (renamed if unnamed
    is fine: the last appsink is used) or `videoconvert ! BGR ! appsink` appended."""
    if re.search(r"!\s*appsink\b[^!]*$", pipeline):
        return pipeline
    return f"{pipeline} ! videoconvert ! video/x-raw,format=BGR ! appsink"


def elements(bin_: Any) -> list[Any]:
    found, iterator = [], bin_.iterate_recurse()
    while True:
        result, element = iterator.next()
        if result != gst().Gst.IteratorResult.OK:
            return found
        found.append(element)


ENCODERS = {  # codec -> (encoder, payloader, caps a receiver sets on udpsrc, its depayloader ! decoder)
    "h264": (("nvv4l2h264enc insert-sps-pps=true maxperf-enable=true", "x264enc tune=zerolatency "
              "speed-preset=ultrafast bitrate=4000 key-int-max=30"), "rtph264pay config-interval=1 pt=96",
             "application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000",
             "rtph264depay ! avdec_h264"),
    "vp8": (("vp8enc deadline=1 cpu-used=8 target-bitrate=4000000 keyframe-max-dist=30",), "rtpvp8pay pt=96",
            "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000", "rtpvp8depay ! vp8dec"),
    "jpeg": (("jpegenc quality=90",), "rtpjpegpay pt=26",
             "application/x-rtp,media=video,encoding-name=JPEG,payload=26,clock-rate=90000",
             "rtpjpegdepay ! jpegdec"),
}  # fmt: skip
CODEC_ORDER = ("h264", "vp8", "jpeg")


def rtp_sender(host: str, port: int, codec: str | None = None) -> tuple[str, str]:
    """The appsrc pipeline that sends RTP to host:port with `codec` (None: the first of h264, vp8, jpeg this machine
    can encode), and the matching receiver's launch line (for the log and for tests)."""
    Gst = gst().Gst
    codecs = (codec,) if codec else CODEC_ORDER
    for name in codecs:
        if name not in ENCODERS:
            raise GstUnavailable(f"rtp codec must be one of {', '.join(ENCODERS)}, got {name!r}")
        encoders, payloader, caps, decode = ENCODERS[name]
        encoder = next((e for e in encoders if Gst.ElementFactory.find(e.split()[0])), None)
        if encoder is None or Gst.ElementFactory.find(payloader.split()[0]) is None:
            continue
        convert = "nvvidconv ! video/x-raw(memory:NVMM),format=I420" if encoder.startswith("nv") else (
            "videoconvert ! video/x-raw,format=I420")  # fmt: skip
        sender = f"{convert} ! {encoder} ! {payloader} ! udpsink host={host} port={port} sync=false async=false"
        receiver = (f'udpsrc port={port} caps="{caps}" ! rtpjitterbuffer latency=50 ! {decode} ! videoconvert ! '
                    "autovideosink")  # fmt: skip
        return sender, receiver
    wanted = codec or "any of h264, vp8, jpeg"
    raise GstUnavailable(f"rtp://{host}:{port}: no RTP encoder for {wanted} here ("
                    + "; ".join(f"{n}: {ELEMENT_PACKAGES.get(ENCODERS[n][0][-1].split()[0], '?')}" for n in codecs)
                    + ")")  # fmt: skip
