"""The streaming pipeline: capture thread -> frame slot -> processing (the caller's thread) -> sink thread.

- Live sources (cameras, RTSP, paced synthetic video) feed a latest-frame slot: the newest frame wins, a frame
  replaced before it was processed is dropped and counted. Files and folders feed a bounded lossless queue (the
  capture thread waits for room), so every frame is processed. Nothing grows without bound.
- Every frame carries its capture timestamp; `StreamStats` has fps, capture-to-output latency percentiles,
  per-stage times and every drop, readable at any time.
- A live source that fails or times out is reopened with exponential backoff; end of file ends the stream.
- `deadline_ms`: a frame that would be older than this when its result is out (its age plus the p90 of the recent
  inference times) is passed through unchanged (or dropped) and counted, so a perception stack never waits on the
  de-rainer. While frames are being passed through, one frame a second is still de-rained to refresh the estimate
  and replaces the recent times (a slow first call, a graph capture or a JIT, does not switch the network off for
  good).
- `stop()` (or a signal handler calling it) ends the stream; the iterator then joins its threads and returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from derain.frames import FrameError, frame_size
from derain.runtime.sinks import Sink
from derain.runtime.sources import Source, SourceError, Status
from derain.runtime.stats import StreamStats

log = logging.getLogger(__name__)

DEADLINE_ACTIONS = ("passthrough", "drop")
DEADLINE_PROBE_S = 1.0  # while passing frames through, de-rain one this often to re-measure the network


class FrameSlot:
    """A bounded hand-over between two threads.

    `capacity=1, drop_oldest=True` is the latest-frame slot; `drop_oldest=False` blocks the producer until there
    is room (lossless). `close()` wakes both sides; `get` then drains what is left and returns None.
    """

    def __init__(self, capacity: int = 1, drop_oldest: bool = True) -> None:
        self.items: deque[Any] = deque()
        self.capacity, self.drop_oldest = capacity, drop_oldest
        self.condition = threading.Condition()
        self.closed = False

    def put(self, item: Any, on_drop: Callable[[Any], Any] | None = None) -> int:
        """Hand `item` over; returns how many older items were dropped to make room (0 when lossless), each
        handed to `on_drop` first."""
        with self.condition:
            dropped = 0
            if self.drop_oldest:
                while len(self.items) >= self.capacity:
                    old = self.items.popleft()
                    dropped += 1
                    if on_drop is not None:
                        on_drop(old)
            else:
                self.condition.wait_for(lambda: len(self.items) < self.capacity or self.closed)
            if not self.closed:
                self.items.append(item)
            self.condition.notify_all()
            return dropped

    def get(self, timeout: float | None = None) -> Any:
        """The oldest item, waiting up to `timeout` s; None on timeout or when closed and empty."""
        with self.condition:
            self.condition.wait_for(lambda: self.items or self.closed, timeout)
            if not self.items:
                return None
            item = self.items.popleft()
            self.condition.notify_all()
            return item

    def close(self) -> None:
        with self.condition:
            self.closed = True
            self.condition.notify_all()


@dataclass
class Packet:
    index: int
    frame: np.ndarray
    captured_at: float  # time.monotonic()
    pts: float | None = None
    clock: str = "host"


RAIN_GRID = 4  # the rain score reads one pixel in RAIN_GRID x RAIN_GRID (1080p: ~0.5 ms instead of ~8)


def rain_score(rainy: np.ndarray, clean: np.ndarray) -> tuple[float, bool]:
    """How much rain the network took out of a frame: the mean brightness it removed (grey levels, on a 1-in-16
    pixel grid; the quantity the shipped network's dry bypass thresholds), and whether it changed the frame at all
    (False: the network found it dry and passed it through unchanged)."""
    before = rainy[::RAIN_GRID, ::RAIN_GRID].astype(np.int16)
    after = clean[::RAIN_GRID, ::RAIN_GRID].astype(np.int16)
    removed = np.maximum(before - after, 0)
    return float(removed.mean()), bool(np.any(before != after))


@dataclass
class FrameInfo:
    """What happened to one frame.

    index: its position in the source; captured_at: time.monotonic() when it was read; timestamp: the source's own
    time of the frame in seconds (GStreamer PTS, a file's presentation time, the camera driver's time; the host's
    monotonic time when the source has none), on `clock` ("pipeline", "container", "camera", "stream" or "host");
    latency_ms: capture to output; infer_ms: the network's time (0 when passed through); action: "derained" (the
    network changed it), "dry" (the network found no rain and left it unchanged), "passthrough" (it would have
    missed the deadline, so the network did not see it) or "dropped" (told to `Stream(on_drop=...)` only: replaced
    by a newer frame, or dropped to keep the deadline); rain_score: mean brightness removed (grey levels; 0 for
    dry and passed-through frames); rainy: the input frame itself (for side-by-side views and measuring).
    """

    index: int
    captured_at: float
    latency_ms: float
    infer_ms: float
    action: str
    rainy: np.ndarray | None = None
    timestamp: float | None = None
    clock: str = "host"
    rain_score: float = 0.0

    def __post_init__(self) -> None:
        if self.timestamp is None:
            self.timestamp = self.captured_at

    @property
    def is_rainy(self) -> bool:
        """Whether the network removed rain from this frame (False for dry and passed-through frames)."""
        return self.action == "derained"

    def record(self) -> dict:
        """Everything but the frame, as plain types (a JSON line of `derain-stream --frames-log`)."""
        return {"index": self.index, "timestamp": round(self.timestamp, 6), "clock": self.clock,
                "action": self.action, "rain_score": round(self.rain_score, 3), "latency_ms": round(self.latency_ms, 3),
                "infer_ms": round(self.infer_ms, 3)}  # fmt: skip


@dataclass
class Backoff:
    """Reopen delays for a failing live source: first, doubling up to `maximum` s; `attempts` None = forever."""

    first: float = 0.25
    maximum: float = 5.0
    attempts: int | None = None


class Stream:
    """Frames from `source` through `process` (uint8 BGR frame -> uint8 BGR frame).

    Iterate it for (clean, FrameInfo) pairs (`info.rainy` is the input frame), or call `run(sink)`.

    Args:
        lossless: every frame processed, in order (default: True for files/folders, False for live sources).
        deadline_ms, deadline_action: see the module docstring.
        max_fps: process at most this many frames a second (live frames in between are dropped).
        max_frames: stop after this many output frames.
        open_timeout: seconds a (re)open may take.
        on_drop: called with a FrameInfo (action "dropped") for every frame that will not come out: replaced in
            the latest-frame slot (from the capture thread: keep it short) or dropped to keep the deadline.
    """

    def __init__(
        self,
        source: Source,
        process: Callable[[np.ndarray], np.ndarray],
        lossless: bool | None = None,
        deadline_ms: float | None = None,
        deadline_action: str = "passthrough",
        max_fps: float | None = None,
        max_frames: int | None = None,
        backoff: Backoff | None = None,
        open_timeout: float = 10.0,
        stats: StreamStats | None = None,
        on_drop: Callable[[FrameInfo], Any] | None = None,
    ) -> None:
        if deadline_action not in DEADLINE_ACTIONS:
            raise ValueError(f"deadline action must be one of {DEADLINE_ACTIONS}, got {deadline_action!r}")
        for name, value in (("deadline_ms", deadline_ms), ("max_fps", max_fps), ("max_frames", max_frames)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        self.source, self.process, self.on_drop = source, process, on_drop
        self.lossless = (not source.live) if lossless is None else lossless
        self.deadline_ms, self.deadline_action = deadline_ms, deadline_action
        self.max_fps, self.max_frames = max_fps, max_frames
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.stats = stats or StreamStats()
        self.slot = FrameSlot(capacity=4 if self.lossless else 1, drop_oldest=not self.lossless)
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.infer_recent: deque[float] = deque(maxlen=32)
        self.last_inferred = 0.0  # time.monotonic() of the last frame through the network
        self.iterated = False

    # ------------------------------------------------------------------------------------------ capture side

    def _reopen(self, reason: str) -> bool:
        """Reopen a live source with backoff; False when out of attempts or stopping."""
        delay, attempt = self.backoff.first, 0
        while not self.stopping.is_set():
            if self.backoff.attempts is not None and attempt >= self.backoff.attempts:
                self.error = SourceError(f"{self.source.uri}: {reason}; gave up after {attempt} reopen attempts")
                return False
            attempt += 1
            self.stats.set_status("reconnecting", f"{reason} (attempt {attempt})")
            log.warning("%s: %s; reopening in %.2f s (attempt %d)", self.source.uri, reason, delay, attempt)
            if self.stopping.wait(delay):
                return False
            try:
                self.source.reopen(self.open_timeout)
            except SourceError as error:
                reason = str(error)
                delay = min(delay * 2, self.backoff.maximum)
                continue
            self.stats.add("reconnects")
            if callable(getattr(self.process, "reset", None)):  # a temporal model's past ends with the old stream
                self.process.reset()
            self.stats.set_status("ok")
            return True
        return False

    def _capture(self) -> None:
        index = 0
        try:
            while not self.stopping.is_set():
                started = time.monotonic()
                captured = self.source.read()
                self.stats.record("read", (time.monotonic() - started) * 1000)
                if captured.status is Status.OK:
                    self.stats.add("captured")
                    packet = Packet(index, captured.frame, captured.timestamp, captured.pts, captured.clock)
                    self.stats.add("dropped_stale", self.slot.put(packet, self._dropped))
                    index += 1
                elif captured.status is Status.CORRUPT:
                    self.stats.add("skipped_corrupt")
                    log.warning("%s: skipped a corrupt frame (%s)", self.source.uri, captured.detail)
                elif captured.status is Status.EOS:
                    self.stats.set_status("eos")
                    break
                elif not self.source.live or not self._reopen(captured.detail or captured.status.value):
                    if not self.source.live:
                        self.error = SourceError(f"{self.source.uri}: {captured.detail or captured.status.value}")
                    break
        except BaseException as error:  # handed to the consumer thread, which raises it
            self.error = error
        finally:
            self.slot.close()

    # --------------------------------------------------------------------------------------- processing side

    def _dropped(self, packet: Packet) -> None:
        """A frame that will never come out (replaced in the latest-frame slot, or dropped to keep the deadline):
        said to `on_drop` as a FrameInfo with action "dropped" (from the capture thread for stale frames)."""
        if self.on_drop is not None:
            latency = (time.monotonic() - packet.captured_at) * 1000
            self.on_drop(FrameInfo(packet.index, packet.captured_at, latency, 0.0, "dropped", None, packet.pts,
                                   packet.clock))  # fmt: skip

    def _expected_infer_ms(self) -> float:
        return float(np.percentile(self.infer_recent, 90)) if self.infer_recent else 0.0

    def _handle(self, packet: Packet) -> tuple[np.ndarray, FrameInfo] | None:
        try:
            frame_size(packet.frame)
        except FrameError as error:
            self.stats.add("skipped_corrupt")
            log.warning("%s: skipped frame %d: %s", self.source.uri, packet.index, error)
            return None
        age_ms = (time.monotonic() - packet.captured_at) * 1000
        late = self.deadline_ms is not None and age_ms + self._expected_infer_ms() > self.deadline_ms
        if late and time.monotonic() - self.last_inferred < DEADLINE_PROBE_S:
            if self.deadline_action == "drop":
                self.stats.add("deadline_dropped")
                self._dropped(packet)
                return None
            self.stats.add("deadline_passthrough")
            latency = (time.monotonic() - packet.captured_at) * 1000
            return packet.frame, FrameInfo(packet.index, packet.captured_at, latency, 0.0, "passthrough", packet.frame,
                                           packet.pts, packet.clock)  # fmt: skip
        started = time.monotonic()
        if getattr(self.process, "temporal", False):  # its past: the frames in order, a gap in time resets it
            out = self.process(packet.frame, timestamp=packet.captured_at if packet.pts is None else packet.pts)
        else:
            out = self.process(packet.frame)
        self.last_inferred = time.monotonic()
        infer_ms = (self.last_inferred - started) * 1000
        if late:  # a probe: the network is measured afresh, one old outlier (a JIT, a graph capture) is forgotten
            self.infer_recent.clear()
        self.infer_recent.append(infer_ms)
        self.stats.record("infer", infer_ms)
        self.stats.add("processed")
        score, changed = rain_score(packet.frame, out) if out.shape == packet.frame.shape else (0.0, True)
        self.stats.add("rainy" if changed else "dry")
        latency = (time.monotonic() - packet.captured_at) * 1000
        return out, FrameInfo(packet.index, packet.captured_at, latency, infer_ms, "derained" if changed else "dry",
                              packet.frame, packet.pts, packet.clock, score)  # fmt: skip

    def __iter__(self) -> Iterator[tuple[np.ndarray, FrameInfo]]:
        self.iterated = True
        capture = threading.Thread(target=self._capture, name="derain-capture", daemon=True)
        self.stats.set_status("ok")
        capture.start()
        next_due = time.monotonic()
        try:
            while not self.stopping.is_set():
                packet = self.slot.get(timeout=0.5)
                if packet is None:
                    if self.slot.closed:
                        break
                    continue  # nothing yet (a slow camera): wait again, stop() still works
                handled = self._handle(packet)
                if handled is None:
                    continue
                out, info = handled
                self.stats.emitted(info.latency_ms)
                yield out, info
                if self.max_frames is not None and self.stats.counts["emitted"] >= self.max_frames:
                    break
                if self.max_fps:
                    next_due = max(next_due + 1.0 / self.max_fps, time.monotonic() - 1.0 / self.max_fps)
                    if self.stopping.wait(max(next_due - time.monotonic(), 0.0)):
                        break
        finally:
            self.stop()
            capture.join(timeout=self.open_timeout + 5)
            if capture.is_alive():  # blocked inside the device's read: closing under it could crash the driver
                log.warning("%s: the capture thread is still blocked in a read; leaving it", self.source.uri)
            else:
                self.source.close()
            if self.stats.status not in ("eos", "error"):
                self.stats.set_status("stopped")
        if self.error is not None:
            self.stats.set_status("error", str(self.error))
            raise self.error

    def stop(self) -> None:
        """End the stream from any thread (or a signal handler); iteration finishes within half a second."""
        self.stopping.set()
        self.slot.close()

    def close(self) -> None:
        """Stop, and release the source if the stream was never iterated (iteration releases it when it ends)."""
        self.stop()
        if not self.iterated:
            self.source.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, sink: Sink | None = None, compose: Callable[[np.ndarray, FrameInfo], np.ndarray] | None = None,
            on_frame: Callable[[FrameInfo], Any] | None = None) -> StreamStats:  # fmt: skip
        """Run to the end with a sink thread: `compose(clean, info)` makes what is written (default the clean
        frame). The sink is closed (a video finalized) however the stream ends."""
        writer = SinkWriter(sink, self.stats, lossless=self.lossless) if sink is not None else None
        try:
            for clean, info in self:
                if writer is not None:
                    writer.put(compose(clean, info) if compose else clean, info.captured_at, info.timestamp)
                if on_frame is not None:
                    on_frame(info)
        finally:
            if writer is not None:
                writer.close()
        return self.stats


class SinkWriter:
    """The sink thread: frames handed over through a bounded slot (lossless streams wait for the sink; live ones
    drop the oldest waiting frame and count it)."""

    def __init__(self, sink: Sink, stats: StreamStats, lossless: bool, capacity: int = 8) -> None:
        self.sink, self.stats = sink, stats
        self.slot = FrameSlot(capacity=capacity, drop_oldest=not lossless)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._write, name="derain-sink", daemon=True)
        self.thread.start()

    def _write(self) -> None:
        while True:
            item = self.slot.get()
            if item is None:
                return
            frame, captured_at, timestamp = item
            started = time.monotonic()
            try:
                if self.sink.takes_timestamps:  # the frame leaves with its source's timestamp
                    self.sink.write(frame, timestamp)
                else:
                    self.sink.write(frame)
            except BaseException as error:
                self.error = error
                self.slot.close()
                return
            done = time.monotonic()
            self.stats.record("sink", (done - started) * 1000)
            self.stats.record("written_latency", (done - captured_at) * 1000)

    def put(self, frame: np.ndarray, captured_at: float, timestamp: float | None = None) -> None:
        if self.error is not None:
            raise self.error
        self.stats.add("sink_dropped", self.slot.put((frame, captured_at, timestamp)))

    def close(self) -> None:
        """Write what is queued, join the thread, close the sink."""
        self.slot.close()
        self.thread.join()
        self.sink.close()
        if self.error is not None:
            raise self.error
