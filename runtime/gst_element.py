"""The `derain` GStreamer element: a de-rainer between a camera and a detector, in any pipeline.

    ... ! videoconvert ! video/x-raw,format=BGR ! derain model=builtin ! videoconvert ! ...
    ... ! nvvidconv ! video/x-raw,format=NV12 ! derain model=engines/ deadline-ms=40 ! ...

A `GstBase.BaseTransform` that de-rains each buffer in place (BGR or NV12 caps in = caps out): PTS, DTS, duration,
flags and caps leave as they came, and the buffer it passes on is the one it received (copied only when upstream
still holds it). Properties: `model` (an artifact, a folder of artifacts to pick from, or "builtin"), `backend`,
`device`, `precision` (which artifact of a folder: best, fp32, fp16, int8, fp8), `threads`, `deadline-ms` (a frame
that would leave later than this after its capture time is passed on unchanged and counted; one a second is still
de-rained to re-measure), `post-messages`; read-only counters `processed`, `dry`, `passed-through`.

Per frame it says what it did, for a downstream element (a custom downstream event, serialized just before the
buffer, so it arrives with its frame) and for the application (an element message on the bus), both the
structure `derain-frame`: pts (and its clock, "pipeline"), index, action (derained / dry / passthrough), rainy
(whether rain was removed), rain-score (mean brightness removed, grey levels), infer-ms. NV12 is decoded and encoded
with the caps' colorimetry (BT.601 / BT.709, limited or full range). It answers latency queries with what it adds
(upstream's latency plus its measured p90; plus the deadline in the maximum) and takes part in QoS
(BaseTransform's: frames already too late downstream are dropped before the network sees them).

In Python: `derain.runtime.gst_element.register()` then `Gst.parse_launch("... ! derain ! ...")`. From
`gst-launch-1.0`: `eval "$(derain-gst env)"` (GStreamer's Python plugin loader, `gstreamer1.0-python3-plugin-loader`
on Debian, finds `gstplugin/python/derain_gst.py`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from derain.runtime import gst
from derain.runtime.stream import DEADLINE_PROBE_S, rain_score

log = logging.getLogger(__name__)

CAPS = "video/x-raw,format=(string){BGR,NV12},width=(int)[16,16384],height=(int)[16,16384]"
MESSAGE = "derain-frame"
_registered: dict[str, Any] = {}


def _element_class() -> type:
    """The element's class, built once the bindings are loaded (its base class comes from them)."""
    if "class" in _registered:
        return _registered["class"]
    g = gst.gst()
    Gst, GstBase, GstVideo, GObject = g.Gst, g.GstBase, g.GstVideo, g.GObject
    readwrite = GObject.ParamFlags.READWRITE
    readable = GObject.ParamFlags.READABLE
    counter = (GObject.TYPE_UINT64, "", "", 0, g.GLib.MAXUINT64, 0, readable)

    class DerainFilter(GstBase.BaseTransform):
        __gtype_name__ = "GstDerain"
        __gstmetadata__ = ("De-rain", "Filter/Effect/Video", "Removes rain from video frames in place (derain-edge "
                           "models: TensorRT engines, ONNX graphs, checkpoints)", "derain-edge")  # fmt: skip
        __gsttemplates__ = (
            Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, Gst.Caps.from_string(CAPS)),
            Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, Gst.Caps.from_string(CAPS)),
        )
        __gproperties__ = {
            "model": (str, "model", "artifact (.engine/.onnx/.pt), a folder of them, or builtin", "builtin",
                      readwrite),
            "backend": (str, "backend", "tensorrt, onnxruntime or pytorch (default: from the artifact)", "",
                        readwrite),
            "device": (str, "device", "auto, cpu, cuda, cuda:N", "auto", readwrite),
            "precision": (str, "precision", "from a folder: best, fp32, fp16, int8, fp8", "best", readwrite),
            "threads": (int, "threads", "CPU threads of the network (0: the cores less one)", 0, 1024, 0, readwrite),
            "deadline-ms": (float, "deadline", "pass a frame through unchanged when it would leave more than this "
                            "after its capture (0: never)", 0.0, 1e7, 0.0, readwrite),
            "post-messages": (bool, "post messages", "post a derain-frame element message per frame", True,
                              readwrite),
            "processed": (*counter[:1], "processed", "frames through the network", *counter[3:]),
            "dry": (*counter[:1], "dry", "frames the network left unchanged (no rain found)", *counter[3:]),
            "passed-through": (*counter[:1], "passed through", "frames passed on unchanged to keep the deadline",
                               *counter[3:]),
        }  # fmt: skip

        def __init__(self) -> None:
            super().__init__()
            self.settings = {"model": "builtin", "backend": "", "device": "auto", "precision": "best", "threads": 0,
                             "deadline-ms": 0.0, "post-messages": True}  # fmt: skip
            self.counts = {"processed": 0, "dry": 0, "passed-through": 0}
            self.derainer: Any = None
            self.info: Any = None
            self.yuv: dict[str, Any] = {}
            self.index = 0
            self.infer_recent: deque[float] = deque(maxlen=32)
            self.last_inferred = 0.0
            self.counts_lock = threading.Lock()
            self.set_in_place(True)
            self.set_qos_enabled(True)
            # a `do_query` override is ambiguous to PyGObject (Element and BaseTransform both have one)
            self.get_static_pad("src").set_query_function_full(self._src_query)

        # ------------------------------------------------------------------------------------ properties

        def do_get_property(self, prop: Any) -> Any:
            if prop.name in self.counts:
                return self.counts[prop.name]
            return self.settings[prop.name]

        def do_set_property(self, prop: Any, value: Any) -> None:
            if self.derainer is not None and prop.name in ("model", "backend", "device", "precision", "threads"):
                log.warning("derain: %s is read when the element starts; it is running, so the change waits for "
                            "the next start", prop.name)  # fmt: skip
            self.settings[prop.name] = value

        # ------------------------------------------------------------------------------------ life cycle

        def do_start(self) -> bool:
            from derain.runtime.backends.base import default_cpu_threads
            from derain.runtime.derainer import Derainer

            options: dict[str, Any] = {}
            device = self.settings["device"]
            threads = self.settings["threads"] or (default_cpu_threads() if device in ("auto", "cpu") else 0)
            if threads:
                options["threads"] = threads
            try:
                self.derainer = Derainer(self.settings["model"], backend=self.settings["backend"] or None,
                                         device=device, precision=self.settings["precision"], **options)  # fmt: skip
            except Exception as error:  # noqa: BLE001 - any failure to load is the element's error message
                self._error(f"cannot load the model {self.settings['model']!r}: {error}")
                return False
            log.info("derain element: %s", self.derainer)
            self.index, self.counts = 0, dict.fromkeys(self.counts, 0)
            return True

        def do_stop(self) -> bool:
            if self.derainer is not None:
                self.derainer.close()
                self.derainer = None
            return True

        def do_set_caps(self, incaps: Any, outcaps: Any) -> bool:
            info = GstVideo.VideoInfo.new_from_caps(incaps)
            if info is None:
                return False
            fmt = info.finfo.format
            if fmt == GstVideo.VideoFormat.NV12 and (info.width % 2 or info.height % 2):
                self._error(f"NV12 frames must have an even size, got {info.width}x{info.height}")
                return False
            self.info = info
            colorimetry = info.colorimetry  # NV12: decoded and encoded with the stream's own matrix and range
            self.yuv = {"matrix": 709 if colorimetry.matrix == GstVideo.VideoColorMatrix.BT709 else 601,
                        "full_range": colorimetry.range == getattr(GstVideo.VideoColorRange, "0_255")}  # fmt: skip
            started = time.monotonic()  # warm up at the negotiated size: the first live frame is not the slow one
            try:
                self.derainer(np.zeros((info.height, info.width, 3), np.uint8))
                self.derainer.reset()  # a temporal model's past starts with the first real frame
            except Exception as error:  # noqa: BLE001 - the pipeline gets an error message, not a traceback
                self._error(f"the model cannot run {info.width}x{info.height} frames: {type(error).__name__}: "
                            f"{error}")  # fmt: skip
                return False
            self.infer_recent = deque([(time.monotonic() - started) * 1000], maxlen=32)  # swapped, not mutated:
            self.post_message(Gst.Message.new_latency(self))  # our latency is known now  (latency queries read it)
            return True

        def _error(self, text: str) -> None:
            error = g.GLib.Error.new_literal(Gst.CoreError.quark(), text, Gst.CoreError.FAILED)
            self.post_message(Gst.Message.new_error(self, error, text))
            log.error("derain element: %s", text)

        # ------------------------------------------------------------------------------------ frames

        def _planes(self, data: Any) -> tuple[np.ndarray, ...]:
            info = self.info
            if info.finfo.format == GstVideo.VideoFormat.BGR:
                return (np.ndarray((info.height, info.width, 3), np.uint8, data, info.offset[0],
                                   (info.stride[0], 3, 1)),)  # fmt: skip
            luma = np.ndarray((info.height, info.width), np.uint8, data, info.offset[0], (info.stride[0], 1))
            chroma = np.ndarray((info.height // 2, info.width // 2, 2), np.uint8, data, info.offset[1],
                                (info.stride[1], 2, 1))  # fmt: skip
            return luma, chroma

        def _age_ms(self, buffer: Any) -> float:
            """How long ago (pipeline clock) this buffer's running time was: 0 without a clock or a timestamp."""
            clock = self.get_clock()
            if clock is None or buffer.pts == Gst.CLOCK_TIME_NONE:
                return 0.0
            try:
                running = self.segment.to_running_time(Gst.Format.TIME, buffer.pts)
            except (AttributeError, TypeError):
                running = buffer.pts
            now = clock.get_time() - self.get_base_time()
            return max(0.0, (now - running) / 1e6)

        def do_transform_ip(self, buffer: Any) -> Any:
            if self.derainer is None or self.info is None:
                return Gst.FlowReturn.NOT_NEGOTIATED
            deadline = self.settings["deadline-ms"]
            recent = tuple(self.infer_recent)  # a snapshot: the latency query reads it from another thread
            expected = float(np.percentile(recent, 90)) if recent else 0.0
            late = deadline > 0 and self._age_ms(buffer) + expected > deadline
            index, self.index = self.index, self.index + 1
            if late and time.monotonic() - self.last_inferred < DEADLINE_PROBE_S:
                with self.counts_lock:
                    self.counts["passed-through"] += 1
                self._tell(buffer, index, "passthrough", 0.0, 0.0)
                return Gst.FlowReturn.OK
            ok, mapped = buffer.map(Gst.MapFlags.READ | Gst.MapFlags.WRITE)
            if not ok:
                self._error("cannot map the buffer for writing")
                return Gst.FlowReturn.ERROR
            try:
                planes = self._planes(mapped.data)
                started = time.monotonic()
                if len(planes) == 1:
                    frame = planes[0]
                    if self.derainer.temporal and buffer.pts != Gst.CLOCK_TIME_NONE:
                        out = self.derainer(frame, timestamp=buffer.pts / Gst.SECOND)
                    else:
                        out = self.derainer(frame)
                    score, changed = rain_score(frame, out)
                    frame[...] = out
                else:
                    luma, chroma = planes
                    out_luma, out_chroma = self.derainer.nv12(luma, chroma, **self.yuv)
                    score, changed = rain_score(luma[..., None], out_luma[..., None])
                    luma[...], chroma[...] = out_luma, out_chroma
                self.last_inferred = time.monotonic()
            except Exception as error:  # noqa: BLE001 - the pipeline gets an error message, not a crash
                self._error(f"de-raining failed: {type(error).__name__}: {error}")
                return Gst.FlowReturn.ERROR
            finally:
                buffer.unmap(mapped)
            infer_ms = (self.last_inferred - started) * 1000
            if late:  # a probe: measured afresh (swapped in whole, never seen empty by the latency query)
                self.infer_recent = deque([infer_ms], maxlen=32)
            else:
                self.infer_recent.append(infer_ms)
            with self.counts_lock:
                self.counts["processed"] += 1
                self.counts["dry"] += 0 if changed else 1
            self._tell(buffer, index, "derained" if changed else "dry", score if changed else 0.0, infer_ms)
            return Gst.FlowReturn.OK

        def _tell(self, buffer: Any, index: int, action: str, score: float, infer_ms: float) -> None:
            pts = buffer.pts if buffer.pts != Gst.CLOCK_TIME_NONE else -1
            rainy = "true" if action == "derained" else "false"
            text = (f"{MESSAGE}, pts=(gint64){pts}, clock=(string)pipeline, index=(guint64){index}, "
                    f"action=(string){action}, rainy=(boolean){rainy}, rain-score=(double){score:.4f}, "
                    f"infer-ms=(double){infer_ms:.3f}")  # fmt: skip
            structure = Gst.Structure.from_string(text)[0]
            self.get_static_pad("src").push_event(Gst.Event.new_custom(Gst.EventType.CUSTOM_DOWNSTREAM,
                                                                       structure.copy()))  # fmt: skip
            if self.settings["post-messages"]:
                self.post_message(Gst.Message.new_element(self, structure))

        # ------------------------------------------------------------------------------------ queries

        def _src_query(self, pad: Any, parent: Any, query: Any) -> bool:
            """The source pad's queries: BaseTransform's answers, with what this element adds to the latency."""
            direction = Gst.PadDirection.SRC
            answered = GstBase.BaseTransform.do_query(self, direction, query)
            if answered and query.type == Gst.QueryType.LATENCY:
                live, minimum, maximum = query.parse_latency()
                recent = tuple(self.infer_recent)
                ours = int((float(np.percentile(recent, 90)) if recent else 0.0) * 1e6)
                deadline = int(self.settings["deadline-ms"] * 1e6)
                minimum += ours
                if maximum != Gst.CLOCK_TIME_NONE:
                    maximum += max(ours, deadline)
                query.set_latency(live, minimum, maximum)
            return answered

    _registered["class"] = DerainFilter
    return DerainFilter


FLOATING = "The created element should be floating"


def quiet_floating_warning() -> None:
    """PyGObject before 3.47 takes the floating reference of every element created from Python, and GStreamer's
    factory then logs "The created element should be floating, this is probably caused by faulty bindings" as a
    CRITICAL (harmless: the element is owned and freed normally). Drop exactly that
    message; every other GStreamer message goes to GLib's default handler."""
    GLib = gst.gst().GLib

    def handler(domain: str, level: Any, message: str, *_: Any) -> None:
        if FLOATING not in message:
            GLib.log_default_handler(domain, level, message)

    GLib.log_set_handler("GStreamer", GLib.LogLevelFlags.LEVEL_CRITICAL, handler)


def register() -> None:
    """Make `derain` an element of this process (for `Gst.parse_launch` / `Gst.ElementFactory.make`)."""
    if "factory" in _registered:
        return
    Gst, GObject = gst.gst().Gst, gst.gst().GObject
    cls = _element_class()
    GObject.type_register(cls)
    if not Gst.Element.register(None, "derain", Gst.Rank.NONE, cls):
        raise gst.GstUnavailable("GStreamer refused to register the derain element")
    quiet_floating_warning()
    _registered["factory"] = True
