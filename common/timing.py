"""Timing for benchmarks and runtime statistics: wall time that waits for the GPU, CUDA-event time, medians
(torch is imported only when CUDA is involved)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def _synchronize(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def wall_seconds(fn: Callable[[], Any], cuda: bool = False) -> float:
    """Seconds `fn` takes, with the GPU drained before and after when `cuda` (host + device time)."""
    _synchronize(cuda)
    started = time.perf_counter()
    fn()
    _synchronize(cuda)
    return time.perf_counter() - started


def cuda_event_ms(fn: Callable[[], Any]) -> float:
    """Milliseconds of GPU time between two CUDA events around `fn` (device time only)."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def median_seconds(fn: Callable[[], Any], repeat: int, warmup: int = 1, cuda: bool = False) -> float:
    """Median of `repeat` synchronized `wall_seconds` after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(wall_seconds(fn, cuda) for _ in range(repeat))
