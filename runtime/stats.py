"""Stream statistics, readable at any time from any thread: counters, and latency percentiles over a bounded window
(memory stays flat however long the stream runs)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

import numpy as np

WINDOW = 2048  # samples kept per series


def percentiles(values: Any, points: tuple[int, ...] = (50, 90, 99)) -> dict[str, float]:
    """{"p50": ..., "p90": ..., "p99": ...} of `values` (NaN when empty)."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        return {f"p{p}": float("nan") for p in points}
    return {f"p{p}": float(np.percentile(data, p)) for p in points}


class StreamStats:
    """Counters and timings of one stream.

    Counters: captured (frames read), processed (frames through the network; of them `rainy` had rain removed and
    `dry` were left unchanged by the network's dry bypass), emitted (frames handed out),
    dropped_stale (replaced in the latest-frame slot before processing), skipped_corrupt (undecodable or
    off-contract frames), deadline_passthrough / deadline_dropped (frames that would have missed the deadline),
    sink_dropped (frames the sink could not keep up with), reconnects (source reopened).
    """

    COUNTERS = ("captured", "processed", "emitted", "rainy", "dry", "dropped_stale", "skipped_corrupt",
                "deadline_passthrough", "deadline_dropped", "sink_dropped", "reconnects")  # fmt: skip
    # milliseconds: latency = capture -> result handed out; written_latency = capture -> written by the sink;
    # infer = the network (with pre/post); read = blocked in the source's read; sink = one write
    SERIES = ("latency", "written_latency", "infer", "read", "sink")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = dict.fromkeys(self.COUNTERS, 0)
        self.series: dict[str, deque[float]] = {name: deque(maxlen=WINDOW) for name in self.SERIES}
        self.emit_times: deque[float] = deque(maxlen=WINDOW)
        self.status = "starting"
        self.detail = ""
        self.started = time.monotonic()

    def add(self, counter: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[counter] += amount

    def record(self, series: str, milliseconds: float) -> None:
        with self._lock:
            self.series[series].append(milliseconds)

    def emitted(self, latency_ms: float) -> None:
        with self._lock:
            self.counts["emitted"] += 1
            self.series["latency"].append(latency_ms)
            self.emit_times.append(time.monotonic())

    def set_status(self, status: str, detail: str = "") -> None:
        with self._lock:
            self.status, self.detail = status, detail

    def snapshot(self) -> dict[str, Any]:
        """Everything as plain types: counters, fps (last second and whole run), per-series percentiles (ms)."""
        with self._lock:
            now = time.monotonic()
            counts = dict(self.counts)
            series = {name: list(values) for name, values in self.series.items()}
            recent = [t for t in self.emit_times if now - t <= 1.0]
            elapsed = now - self.started
            status, detail = self.status, self.detail
        return {
            "status": status,
            "detail": detail,
            "seconds": round(elapsed, 3),
            **counts,
            "fps_last_second": float(len(recent)),
            "fps": counts["emitted"] / elapsed if elapsed > 0 else 0.0,
            **{f"{name}_ms": percentiles(values) for name, values in series.items()},
        }

    def line(self) -> str:
        """One status line: fps, latency percentiles, infer p50, drops."""
        s = self.snapshot()
        lat, infer = s["latency_ms"], s["infer_ms"]
        return (
            f"[{s['status']}] {s['emitted']} frames  {s['fps_last_second']:.1f} fps  latency p50 {lat['p50']:.1f} / "
            f"p90 {lat['p90']:.1f} / p99 {lat['p99']:.1f} ms  infer p50 {infer['p50']:.1f} ms  dropped "
            f"{s['dropped_stale']}  corrupt {s['skipped_corrupt']}  deadline {s['deadline_passthrough']}+"
            f"{s['deadline_dropped']}  reconnects {s['reconnects']}"
        )
